"""The `feeds` table: one row per configured feed, kept in step with its source file."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import asyncpg

from zoningsync.config import FeedConfig
from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("feeds.sql")


def _config_snapshot(feed: FeedConfig) -> dict[str, Any]:
    """The feed as JSON; a case feed's compiled options are kept as their TOML."""
    snapshot = asdict(replace(feed, cases=None))
    del snapshot["cases"]
    snapshot["source_file"] = str(feed.source_file)
    snapshot["kind"] = feed.kind.value
    return snapshot


async def register_feed(conn: Conn, feed: FeedConfig) -> None:
    """Insert or refresh the feed's row; safe when several daemons start at once."""
    async with conn.transaction():
        await conn.execute(SQL["feed_registration_lock"], feed.full_id)
        await conn.execute(
            SQL["upsert_feed"], feed.full_id, feed.jurisdiction, feed.id, feed.kind.value,
            feed.type, feed.url, _config_snapshot(feed),
        )


async def pause_state(conn: Conn, feed_id: str) -> tuple[bool, str | None]:
    row = await conn.fetchrow(SQL["feed_pause_state"], feed_id)
    if row is None:
        return False, None
    return bool(row["paused"]), row["paused_reason"]


async def pause_row(conn: Conn, feed_id: str) -> asyncpg.Record | None:
    """The feed's paused, paused_reason and paused_at, as a running run watches them."""
    return await conn.fetchrow(SQL["feed_pause_watch"], feed_id)


async def paused_since(conn: Conn, feed_id: str) -> datetime | None:
    """When the feed was paused (None if it is not): a forced run ignores this pause only."""
    row = await pause_row(conn, feed_id)
    return row["paused_at"] if row is not None and row["paused"] else None


async def mark_success(conn: Conn, feed_id: str, run_id: int) -> None:
    """The run succeeded: the feed's last success (in the run's finishing transaction)."""
    await conn.execute(SQL["mark_feed_success"], feed_id, run_id)


async def reread_requested(conn: Conn, feed_id: str) -> datetime | None:
    """When `quarantine retry` asked the feed's next run to read everything, if it did."""
    value: datetime | None = await conn.fetchval(SQL["reread_requested"], feed_id)
    return value


async def clear_reread(conn: Conn, feed_id: str, requested_at: datetime) -> None:
    """The run that planned a full read for the request answered it."""
    await conn.execute(SQL["clear_reread"], feed_id, requested_at)
