"""Pausing and resuming feeds: rows in `feeds`, an audit row, a NOTIFY, one transaction.

The NOTIFY on `zoningsync_control` is sent when the transaction commits, so a
run that wakes on it always reads the pause it announces. Runs also poll the
feed's row (`feed_run.PauseWatch`), so a notification missed while a run was
connecting still stops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from zoningsync.sql import queries
from zoningsync.store.audit import record_action
from zoningsync.store.connect import Conn

SQL = queries("control.sql")
CHANNEL = "zoningsync_control"


@dataclass(frozen=True)
class FeedPauseState:
    feed: str
    paused: bool
    reason: str | None


async def feeds_of_target(conn: Conn, target: str) -> list[FeedPauseState]:
    """The registered feeds a target names: one feed (`j/f`) or a jurisdiction's (`j`)."""
    return [FeedPauseState(r["id"], r["paused"], r["paused_reason"])
            for r in await conn.fetch(SQL["feeds_of_target"], target)]


async def notify(conn: Conn, action: str, feed: str, reason: str | None = None) -> None:
    payload: dict[str, str] = {"action": action, "feed": feed}
    if reason is not None:
        payload["reason"] = reason
    await conn.execute(SQL["notify_control"], orjson.dumps(payload).decode())


async def mark_paused(conn: Conn, feeds: Sequence[str], reason: str) -> None:
    """Set the feeds paused, nothing more: callers log and notify as their action needs."""
    await conn.execute(SQL["pause_feeds"], list(feeds), reason)


async def pause_feeds(conn: Conn, target: str, feeds: Sequence[str], reason: str) -> None:
    """Pause the feeds, log it against `target`, and tell every run of them (one transaction)."""
    async with conn.transaction():
        await mark_paused(conn, feeds, reason)
        await record_action(conn, "pause", target, reason=reason, outcome="done",
                            detail=f"paused {', '.join(feeds)}")
        for feed in feeds:
            await notify(conn, "pause", feed, reason)


async def resume_feeds(conn: Conn, target: str, feeds: Sequence[str]) -> None:
    async with conn.transaction():
        await conn.execute(SQL["resume_feeds"], list(feeds))
        await record_action(conn, "resume", target, outcome="done",
                            detail=f"resumed {', '.join(feeds)}")
        for feed in feeds:
            await notify(conn, "resume", feed)
