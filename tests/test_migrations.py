"""Migrations: apply in order, re-apply is a no-op, edits are refused, races are safe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from zoningsync.errors import MigrationError
from zoningsync.migrate import apply_migrations, available_migrations, migration_status
from zoningsync.store.connect import connection


def database_url(cluster_url: str, name: str) -> str:
    base, _, query = cluster_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def empty_db(cluster_url: str) -> AsyncIterator[str]:
    """A database with nothing in it (not even PostGIS), dropped afterwards."""
    name = f"zs_m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(cluster_url, name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_apply_in_order_and_are_recorded(empty_db: str) -> None:
    applied = await apply_migrations(empty_db)
    assert applied == [m.name for m in available_migrations()]
    async with connection(empty_db) as conn:
        recorded = await conn.fetch(
            "SELECT version, name FROM zoningsync.schema_migrations ORDER BY version")
    assert [r["name"] for r in recorded] == applied


async def test_reapplying_migrations_is_a_no_op(empty_db: str) -> None:
    await apply_migrations(empty_db)
    assert await apply_migrations(empty_db) == []
    states = await migration_status(empty_db)
    assert {s.state for s in states} == {"applied"}


async def test_status_lists_pending_migrations_before_migrate(empty_db: str) -> None:
    states = await migration_status(empty_db)
    assert [s.state for s in states] == ["pending"] * len(available_migrations())


async def test_an_applied_migration_edited_afterwards_is_refused(empty_db: str,
                                                                 tmp_path: Path) -> None:
    shipped = resources.files("zoningsync.migrations")
    for entry in shipped.iterdir():
        if entry.name.endswith(".sql"):
            (tmp_path / entry.name).write_text(entry.read_text("utf-8"))
    await apply_migrations(empty_db, tmp_path)
    first = sorted(tmp_path.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await apply_migrations(empty_db, tmp_path)
    states = {s.name: s.state for s in await migration_status(empty_db)}
    assert set(states.values()) == {"applied"}  # the shipped files are still intact


async def test_a_failing_migration_leaves_nothing_behind(empty_db: str, tmp_path: Path) -> None:
    for entry in resources.files("zoningsync.migrations").iterdir():
        if entry.name.endswith(".sql"):
            (tmp_path / entry.name).write_text(entry.read_text("utf-8"))
    (tmp_path / "9999_broken.sql").write_text(
        "CREATE TABLE zoningsync.half_done (x int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match=r"9999_broken\.sql failed"):
        await apply_migrations(empty_db, tmp_path)
    async with connection(empty_db) as conn:
        assert await conn.fetchval("SELECT to_regclass('zoningsync.half_done')") is None
        assert await conn.fetchval(
            "SELECT count(*) FROM zoningsync.schema_migrations WHERE version = 9999") == 0


async def test_concurrent_migrate_calls_apply_each_migration_once(empty_db: str) -> None:
    results = await asyncio.gather(*(apply_migrations(empty_db) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in available_migrations())


async def test_migrate_works_where_roles_and_postgis_already_exist(cluster_url: str,
                                                                   empty_db: str) -> None:
    await apply_migrations(empty_db)  # roles now exist cluster-wide
    other = f"zs_m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f'CREATE DATABASE "{other}"')
        url = database_url(cluster_url, other)
        async with connection(url) as conn:
            await conn.execute("CREATE EXTENSION postgis")
        assert await apply_migrations(url) == [m.name for m in available_migrations()]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
        await admin.close()


def test_every_migration_file_is_shipped_in_the_package() -> None:
    on_disk = sorted(p.name for p in Path(__file__).parents[1].joinpath("migrations").glob("*.sql"))
    assert on_disk == [m.name for m in available_migrations()]


async def test_every_table_and_column_carries_a_comment(db: asyncpg.Connection) -> None:
    missing = await db.fetch(
        """
        SELECT c.relname, a.attname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'zoningsync'
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'v', 'p')
          AND col_description(c.oid, a.attnum) IS NULL
        """
    )
    assert [tuple(r) for r in missing] == []
    uncommented = await db.fetch(
        """
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'zoningsync'
        WHERE c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL
        """
    )
    assert [r["relname"] for r in uncommented] == []


async def test_the_normalizing_functions_are_immutable_so_they_can_be_indexed(
        db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT p.proname, p.provolatile::text FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'zoningsync'"
        " WHERE p.proname LIKE 'normalize_%' ORDER BY 1")
    assert [tuple(r) for r in rows] == [("normalize_address", "i"),
                                        ("normalize_parcel_id", "i")]


async def test_the_parcels_view_gains_address_as_its_last_column(
        db: asyncpg.Connection) -> None:
    names = [r["column_name"] for r in await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'zoningsync'"
        " AND table_name = 'parcels' ORDER BY ordinal_position")]
    assert names[-1] == "address"

