"""Registering feeds: the row each configured feed has, however many daemons start at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from tests.portal_helpers import feed_config
from zoningsync.store.connect import connect
from zoningsync.store.feeds import register_feed


async def test_daemons_registering_the_same_new_feeds_at_once_all_succeed(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path) -> None:
    base = feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/x/FeatureServer/0")
    feeds = [replace(base, id=f"parcels-{i:02d}") for i in range(40)]
    sessions = [await connect(db_url) for _ in range(6)]
    try:
        async def register_all(conn: asyncpg.Connection[Any]) -> None:
            for feed in feeds:
                await register_feed(conn, feed)

        await asyncio.gather(*(register_all(conn) for conn in sessions))
    finally:
        for conn in sessions:
            await conn.close()
    assert await db.fetchval("SELECT count(*) FROM zoningsync.feeds") == len(feeds)
