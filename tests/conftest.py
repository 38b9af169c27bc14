"""The test harness: one throwaway PostGIS per session, one database per test.

The cluster is started with the same `EmbeddedCluster` code as zoningsync's
embedded default, so every test run also tests that path (as root it runs as an
unprivileged user). A migrated template database is cloned for each test.
`ZONINGSYNC_TEST_DATABASE_URL` points the suite at an existing PostGIS server
instead (its user needs CREATEDB).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from zoningsync.pgcluster import EmbeddedCluster
from zoningsync.store.connect import connect

TEMPLATE = "zs_template"
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def test_state_dir() -> Iterator[Path]:
    """A temp dir the unprivileged cluster user can traverse (pytest's own is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="zs-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_url(test_state_dir: Path) -> Iterator[str]:
    """Admin URL (database `postgres`) of the session's PostGIS server."""
    external = os.environ.get("ZONINGSYNC_TEST_DATABASE_URL")
    if external:
        yield with_database(external, "postgres")
        return
    cluster = EmbeddedCluster(test_state_dir / "cluster", settings=TEST_SETTINGS)
    asyncio.run(cluster.start())
    try:
        yield cluster.url("postgres")
    finally:
        asyncio.run(cluster.stop())


@pytest.fixture(scope="session")
def template_url(cluster_url: str) -> str:
    from zoningsync.migrate import apply_migrations

    async def build() -> str:
        admin = await asyncpg.connect(cluster_url)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await admin.close()
        url = with_database(cluster_url, TEMPLATE)
        await apply_migrations(url)
        return url

    return asyncio.run(build())


@pytest.fixture
async def db_url(cluster_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database of its own for one test."""
    name = f"zs_t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield with_database(cluster_url, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()
