"""A first load into an empty table builds the secondary indexes after it."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.portal_helpers import feed_config
from tests.test_sync import run
from zoningsync.portal.county import County
from zoningsync.portal.server import run_portal
from zoningsync.store.bulk import (
    SECONDARY_INDEXES,
    defer_secondary_indexes,
    ensure_secondary_indexes,
)

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
