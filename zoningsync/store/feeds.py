"""The `feeds` table: one row per configured feed, kept in step with its source file."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from zoningsync.config import FeedConfig
from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("store.sql")


def _config_snapshot(feed: FeedConfig) -> dict[str, Any]:
    """The feed as JSON; a case feed's compiled options are kept as their TOML."""
    snapshot = asdict(replace(feed, cases=None))
    del snapshot["cases"]
    snapshot["source_file"] = str(feed.source_file)
    snapshot["kind"] = feed.kind.value
    return snapshot


async def register_feed(conn: Conn, feed: FeedConfig) -> None:
    await conn.execute(
        SQL["upsert_feed"], feed.full_id, feed.jurisdiction, feed.id, feed.kind.value,
        feed.type, feed.url, _config_snapshot(feed),
    )


async def pause_state(conn: Conn, feed_id: str) -> tuple[bool, str | None]:
    row = await conn.fetchrow(SQL["feed_pause_state"], feed_id)
    if row is None:
        return False, None
    return bool(row["paused"]), row["paused_reason"]
