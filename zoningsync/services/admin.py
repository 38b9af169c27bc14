"""Pause, resume and the audit log: admin actions through the database only.

A pause is a row change, an audit row and a NOTIFY in one transaction, so it
reaches a run of the feed on any host (the run listens on its lease
connection) and opens no port. A feed configured but never synced is
registered from its source file first, so it can be paused before its first run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoningsync.config import load_sources, select_feeds
from zoningsync.database import ready_database
from zoningsync.errors import UsageError, ZoningsyncError
from zoningsync.settings import Settings
from zoningsync.store.audit import list_actions
from zoningsync.store.connect import connection
from zoningsync.store.control import FeedPauseState, feeds_of_target, pause_feeds, resume_feeds
from zoningsync.store.feeds import register_feed


async def target_feeds(url: str, target: str, sources_dir: Path) -> list[FeedPauseState]:
    """The target's feeds as the database knows them, registering configured ones first."""
    configured = []
    problem: ZoningsyncError | None = None
    try:
        configured = select_feeds(load_sources(sources_dir), target)
    except ZoningsyncError as exc:
        problem = exc
    async with connection(url) as conn:
        for feed in configured:
            await register_feed(conn, feed)
        found = await feeds_of_target(conn, target)
    if not found:
        raise problem or UsageError(f"unknown feed or jurisdiction {target!r}")
    return found


async def pause(settings: Settings, target: str, reason: str,
                sources_dir: Path | None) -> list[str]:
    """Pause the target's feeds; the feeds paused."""
    url = await ready_database(settings)
    feeds = [f.feed for f in await target_feeds(url, target, sources_dir or settings.sources)]
    async with connection(url) as conn:
        await pause_feeds(conn, target, feeds, reason)
    return feeds


async def resume(settings: Settings, target: str,
                 sources_dir: Path | None) -> tuple[list[str], list[str]]:
    """Resume the target's paused feeds; (the feeds resumed, every feed of the target)."""
    url = await ready_database(settings)
    found = await target_feeds(url, target, sources_dir or settings.sources)
    paused = [f.feed for f in found if f.paused]
    if paused:
        async with connection(url) as conn:
            await resume_feeds(conn, target, paused)
    return paused, [f.feed for f in found]


async def audit_log(settings: Settings, target: str | None, limit: int
                    ) -> list[dict[str, Any]]:
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await list_actions(conn, target, limit)
