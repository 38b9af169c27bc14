"""Sync feeds now, in this process, or ask a running daemon to; list what runs did.

No failure of one feed stops the others: each ends in a summary, its `runs`
row or the failure's, and `exit_code_of` turns the summaries into the exit code
a script can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from zoningsync.config import FeedConfig
from zoningsync.database import ready_database
from zoningsync.errors import FeedBusy, ZoningsyncError, describe_failure
from zoningsync.observability import LoopLagProbe
from zoningsync.progress import reporter_for
from zoningsync.services.runtime import SESSIONS_PER_RUN, sync_runtime
from zoningsync.settings import Settings
from zoningsync.store import schedules
from zoningsync.store.connect import connection
from zoningsync.store.runs import list_runs
from zoningsync.sync import sync_feed

log = structlog.get_logger(__name__)

NOW_WAIT_S = 10.0
NOW_POLL_S = 0.2


def feed_failure(feed: FeedConfig, exc: Exception) -> dict[str, Any]:
    """The summary of a feed whose sync raised: status, one-line error, exit code.

    A feed another process is syncing is `busy` (exit 75, try again later); any
    other error is `failed`, with its own exit code (2 for a configuration mistake
    found on the server, such as a key field the layer lacks) or 1.
    """
    message = describe_failure(exc)
    if isinstance(exc, FeedBusy):
        log.warning("feed busy", feed=feed.full_id, error=message)
        return {"feed": feed.full_id, "status": "busy", "error": message,
                "exit_code": exc.exit_code}
    log.error("sync failed", feed=feed.full_id, error_type=type(exc).__name__, error=message)
    log.debug("sync failure traceback", feed=feed.full_id, exc_info=exc)
    code = exc.exit_code if isinstance(exc, ZoningsyncError) else 1
    return {"feed": feed.full_id, "status": "failed", "error": message, "exit_code": code}


def exit_code_of(results: Sequence[dict[str, Any]]) -> int:
    """0 when every feed succeeded; 75 when every other one was busy; else the worst code."""
    codes = [int(s.get("exit_code", 1)) for s in results if s.get("status") != "succeeded"]
    if not codes:
        return 0
    failed = [c for c in codes if c != FeedBusy.exit_code]
    return max(failed) if failed else FeedBusy.exit_code


async def sync_feeds(settings: Settings, feeds: Sequence[FeedConfig], *, full: bool,
                     interactive: bool | None = None, allow_mass_retire: bool = False,
                     force: bool = False) -> list[dict[str, Any]]:
    """Sync feeds one after another; no failure of one feed stops the others.

    Each feed's summary is its `runs` row, or `feed_failure`'s when the sync
    raised. `allow_mass_retire` lets runs through that the retirement guard
    would hold; `force` syncs paused feeds too.
    """
    url = await ready_database(settings)
    results: list[dict[str, Any]] = []
    async with sync_runtime(url, pool_size=SESSIONS_PER_RUN) as runtime:
        probe = LoopLagProbe()
        probe.start()
        try:
            for feed in feeds:
                try:
                    summary = await sync_feed(
                        db_url=url, pool=runtime.pool, feed=feed, fetcher=runtime.fetcher,
                        executor=runtime.executor,
                        reporter=reporter_for(feed.full_id, interactive=interactive),
                        force_full=full, allow_mass_retire=allow_mass_retire,
                        ignore_pause=force,
                    )
                except Exception as exc:
                    summary = feed_failure(feed, exc)
                results.append(summary)
        finally:
            await probe.stop()
    lag_ms = round(probe.percentile(99) * 1000, 1)
    for summary in results:
        summary["loop_lag_p99_ms"] = lag_ms
    return results


async def ask_daemons(settings: Settings, feeds: Sequence[FeedConfig]) -> dict[str, int]:
    """Ask running daemons to run these feeds now; the run id of each one a daemon started.

    The request is a row (`run_now_requested_at`) and a NOTIFY on
    `zoningsync_control`; a feed no daemon starts within NOW_WAIT_S has its request
    withdrawn, so the caller can run it in the foreground instead.
    """
    url = await ready_database(settings)
    ids = [f.full_id for f in feeds]
    async with connection(url) as conn:
        before = {i: await schedules.newest_run(conn, i) for i in ids}
        requested = await schedules.request_run_now(conn, ids)
        started: dict[str, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NOW_WAIT_S
        while requested.keys() - started.keys() and loop.time() < deadline:
            await asyncio.sleep(NOW_POLL_S)
            for feed_id, at in requested.items():
                claimed_at, run_id, resumed = await schedules.newest_run(conn, feed_id)
                began = (run_id, resumed) != before[feed_id][1:]
                if claimed_at is not None and claimed_at >= at and began and run_id:
                    started[feed_id] = run_id
        await schedules.cancel_run_now(conn, [i for i in requested if i not in started])
    return started


async def recent_runs(settings: Settings, feed_id: str | None, limit: int
                      ) -> list[dict[str, Any]]:
    """The newest runs (of one feed, or all), with their counts."""
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await list_runs(conn, feed_id, limit)
