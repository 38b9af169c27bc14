"""The test harness: one throwaway PostGIS per session, one database per test.

The cluster is started with the same `EmbeddedCluster` code as zoningsync's
embedded default, so every test run also exercises that path (as root it runs as
an unprivileged user). A migrated template database is cloned for each test,
which costs a file copy instead of a migration run.
`ZONINGSYNC_TEST_DATABASE_URL` points the suite at an existing PostGIS server
instead; its user needs CREATEDB.

Nothing here reaches past this machine: sockets to anything but loopback, and
name lookups of anything but localhost, fail for the whole session.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from zoningsync.http import Fetcher
from zoningsync.pgcluster import EmbeddedCluster
from zoningsync.store.connect import connect

TEMPLATE = "zs_template"
EXTERNAL_URL_ENV = "ZONINGSYNC_TEST_DATABASE_URL"
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def is_local_host(host: object) -> bool:
    if host is None:
        return True
    text = (host.decode() if isinstance(host, bytes) else str(host)).strip("[]").lower()
    if text in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@pytest.fixture(scope="session", autouse=True)
def no_internet() -> Iterator[None]:
    """Fail fast, with a reason, on any attempt to leave 127.0.0.1."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local_host(host):
            raise socket.gaierror(socket.EAI_NONAME, f"tests may not look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def refuse_remote(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local_host(address[0]):
            raise OSError(errno.ENETUNREACH, f"tests may not connect to {address[0]}")

    def connect(sock: socket.socket, address: Any) -> None:
        refuse_remote(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        refuse_remote(sock, address)
        return real_connect_ex(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """Admin URL (database `postgres`) of the session's PostGIS server."""
    if external := os.environ.get(EXTERNAL_URL_ENV):
        yield with_database(external, "postgres")
        return
    # pytest's own temp dirs are 0700 root: the unprivileged cluster user needs a way in.
    state_dir = Path(tempfile.mkdtemp(prefix="zs-test-", dir="/tmp"))
    state_dir.chmod(0o755)
    cluster = EmbeddedCluster(state_dir, settings=TEST_SETTINGS)
    try:
        asyncio.run(cluster.start())
        yield cluster.url("postgres")
    finally:
        asyncio.run(cluster.stop())
        shutil.rmtree(state_dir, ignore_errors=True)


async def _drop_template(admin: asyncpg.Connection[Any]) -> None:
    if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE):
        await admin.execute(f"ALTER DATABASE {TEMPLATE} IS_TEMPLATE false")
        await admin.execute(f"DROP DATABASE {TEMPLATE} WITH (FORCE)")


async def _build_template(cluster_url: str) -> str:
    from zoningsync.migrate import apply_migrations

    admin = await asyncpg.connect(cluster_url)
    try:
        await _drop_template(admin)
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
        url = with_database(cluster_url, TEMPLATE)
        await apply_migrations(url)
        # Cloning needs a template nobody is connected to; migrations closed theirs.
        await admin.execute(f"ALTER DATABASE {TEMPLATE} IS_TEMPLATE true")
    finally:
        await admin.close()
    return url


async def _remove_template(cluster_url: str) -> None:
    admin = await asyncpg.connect(cluster_url)
    try:
        await _drop_template(admin)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def template_url(cluster_url: str) -> Iterator[str]:
    """A migrated database marked as template; dropped at the end on a shared server."""
    url = asyncio.run(_build_template(cluster_url))
    yield url
    if os.environ.get(EXTERNAL_URL_ENV):
        asyncio.run(_remove_template(cluster_url))


@pytest.fixture
async def db_url(cluster_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database of its own for one test, dropped afterwards."""
    name = f"zs_t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield with_database(cluster_url, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection (with zoningsync's codecs) to this test's own database."""
    conn = await connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """The one HTTP fetcher a test's producers share, closed afterwards."""
    async with Fetcher() as f:
        yield f


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for tests that talk to a server directly."""
    async with aiohttp.ClientSession() as session:
        yield session
