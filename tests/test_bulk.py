"""A first load into an empty table builds the secondary indexes after it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.portal_helpers import feed_config
from tests.test_sync import run
from zoningsync.portal.county import County
from zoningsync.portal.server import run_portal
from zoningsync.store.bulk import (
    SECONDARY_INDEXES,
    build_secondary_indexes,
    defer_secondary_indexes,
    ensure_secondary_indexes,
)
from zoningsync.store.connect import create_pool

INDEXDEFS = ("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'zoningsync'"
             " AND indexname = ANY($1::text[]) ORDER BY indexname")


async def test_rebuilt_indexes_are_the_migrations_own(db: asyncpg.Connection) -> None:
    migrated = await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES))
    assert len(migrated) == len(SECONDARY_INDEXES)
    assert await defer_secondary_indexes(db)
    assert await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES)) == []
    assert sorted(await ensure_secondary_indexes(db)) == sorted(SECONDARY_INDEXES)
    assert await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES)) == migrated


async def test_a_table_with_rows_keeps_its_indexes(db_url: str, db: asyncpg.Connection,
                                                   tmp_path: Path) -> None:
    async with run_portal(County(200, seed=4)) as portal:
        await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    assert not await defer_secondary_indexes(db)
    assert len(await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES))) == len(SECONDARY_INDEXES)


async def test_a_first_load_ends_with_every_index(db_url: str, db: asyncpg.Connection,
                                                 tmp_path: Path) -> None:
    async with run_portal(County(300, seed=4)) as portal:
        await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    assert len(await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES))) == len(SECONDARY_INDEXES)


async def test_the_next_run_builds_indexes_a_dead_load_left_missing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with run_portal(County(200, seed=4)) as portal:
        feed = feed_config(tmp_path, portal.layer_url(0))
        await run(db_url, tmp_path, feed)
        await db.execute("DROP INDEX zoningsync.features_geom_idx")
        await run(db_url, tmp_path, feed)
    assert len(await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES))) == len(SECONDARY_INDEXES)


async def test_builds_that_start_together_build_each_index_once(
        db_url: str, db: asyncpg.Connection) -> None:
    """Two runs' builders, two sessions each, share the work without racing a twin."""
    migrated = await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES))
    assert await defer_secondary_indexes(db)
    pool = await create_pool(db_url, max_size=4)
    try:
        first, second = await asyncio.gather(build_secondary_indexes(pool, sessions=2),
                                             build_secondary_indexes(pool, sessions=2))
    finally:
        await pool.close()
    assert sorted(first + second) == sorted(SECONDARY_INDEXES)
    assert await db.fetch(INDEXDEFS, list(SECONDARY_INDEXES)) == migrated
