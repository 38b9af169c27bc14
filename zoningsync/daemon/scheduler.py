"""Which feed runs when, shared by every daemon through PostgreSQL.

Every tick (at most TICK_S apart, at once on a control NOTIFY or when a run
ends) the scheduler claims due feeds in one short transaction (`claim_due`:
FOR UPDATE SKIP LOCKED, only feeds this daemon's sources define, not paused;
its session holds that feed set, sent once, so a tick costs what is due)
and runs each under its lease via `sync_feed`, at most `max_concurrent` at a
time. When a run ends, its outcome sets the feed's next due time. A feed another
process holds the lease of is `busy`, not failed: it is asked for again soon.
A `RunWatcher` (the webhook receiver's coalescer) hears each run start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from zoningsync import metrics
from zoningsync.config import FeedConfig, Jurisdiction
from zoningsync.daemon.lifecycle import Lifecycle
from zoningsync.daemon.schedule import next_due
from zoningsync.errors import DatabaseError, FeedBusy, describe_failure
from zoningsync.feed_run import FeedPaused
from zoningsync.http import Fetcher
from zoningsync.progress import reporter_for
from zoningsync.store import schedules
from zoningsync.store.connect import connect
from zoningsync.store.feeds import register_feed
from zoningsync.store.lease import holder_name
from zoningsync.sync import sync_feed

log = structlog.get_logger(__name__)

TICK_S = 2.0
BUSY_RETRY_S = 10.0
STATUS_EVERY_S = 10.0
# Errors that a database restart or a network blip causes: the next tick tries again.
TRANSIENT = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
             DatabaseError)


def now_utc() -> datetime:
    return datetime.now(UTC)


class RunWatcher(Protocol):
    """Told when one of this daemon's runs starts (claimed) and ends (released)."""

    def run_started(self, feed: str) -> None: ...

    def run_finished(self, feed: str) -> None: ...


class Scheduler:
    """This daemon's share of the feeds: claims due ones, runs them, reschedules them."""

    def __init__(self, *, db_url: str, pool: asyncpg.Pool[Any], fetcher: Fetcher,
                 executor: Executor, node: str, max_concurrent: int,
                 lifecycle: Lifecycle, watcher: RunWatcher | None = None) -> None:
        self.db_url = db_url
        self.pool = pool
        self.fetcher = fetcher
        self.executor = executor
        self.node = node
        self.max_concurrent = max_concurrent
        self.lifecycle = lifecycle
        self.watcher = watcher
        self.feeds: dict[str, FeedConfig] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.wake = asyncio.Event()
        self.states: dict[str, int] = {}
        self._conn: asyncpg.Connection[Any] | None = None
        # The feed set the session holds (`schedules.use_daemon_feeds`), by identity.
        self._session_feeds: dict[str, FeedConfig] | None = None

    # -- sources ----------------------------------------------------------------------

    async def use_sources(self, jurisdictions: Iterable[Jurisdiction]) -> None:
        """Make these the feeds this daemon runs: registered, each with a due time."""
        feeds = {f.full_id: f for j in jurisdictions for f in j.feeds}
        async with self.pool.acquire() as conn:
            for feed in feeds.values():
                await register_feed(conn, feed)
                metrics.touch_feed(feed.full_id)
                metrics.touch_host(feed.host)
            now = now_utc()
            due = {
                i.feed: next_due(i.feed, feeds[i.feed].schedule,
                                 last_success=i.last_success_at,
                                 last_attempt=i.last_attempt_at,
                                 failures=i.consecutive_failures, now=now)
                for i in await schedules.schedule_inputs(conn, list(feeds))
            }
            await schedules.set_due_times(conn, due)
        self.feeds = feeds
        self.wake.set()

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and start due feeds until a stop is requested; then start nothing more."""
        loop = asyncio.get_running_loop()
        next_status = 0.0
        while not self.lifecycle.stop.is_set():
            self.wake.clear()
            try:
                await self._tick()
                if loop.time() >= next_status:
                    await self._report_states()
                    next_status = loop.time() + STATUS_EVERY_S
            except TRANSIENT as exc:
                log.warning("scheduler tick failed; trying again", error=describe_failure(exc))
                await self._drop_connection()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._woken(), TICK_S)

    async def _woken(self) -> None:
        stop = asyncio.ensure_future(self.lifecycle.stop.wait())
        wake = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _connection(self) -> asyncpg.Connection[Any]:
        """The scheduler's own session, named after this node: its claims live with it."""
        if self._conn is None or self._conn.is_closed():
            self._session_feeds = None
            self._conn = await connect(self.db_url, application_name=holder_name())
        return self._conn

    async def _drop_connection(self) -> None:
        self._session_feeds = None
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def _tick(self) -> None:
        free = self.max_concurrent - len(self.running)
        feeds = self.feeds
        if free <= 0 or not feeds:
            return
        conn = await self._connection()
        if self._session_feeds is not feeds:
            await schedules.use_daemon_feeds(conn, list(feeds))
            self._session_feeds = feeds
        for claim in await schedules.claim_due(conn, self.node, list(self.running), free):
            feed = feeds[claim.feed]
            self.running[claim.feed] = asyncio.get_running_loop().create_task(
                self._run(feed, claim), name=f"run {claim.feed}")
            if self.watcher is not None:
                self.watcher.run_started(claim.feed)

    async def _report_states(self) -> None:
        async with self.pool.acquire() as conn:
            states = await schedules.feed_states(conn, list(self.feeds))
        states["running"] = len(self.running)
        self.states = states
        metrics.feeds.labels("scheduled").set(states["scheduled"])
        metrics.feeds.labels("running").set(states["running"])
        metrics.feeds.labels("paused").set(states["paused"])
        metrics.feeds.labels("failing").set(states["failing"])

    def status_line(self) -> str:
        """`STATUS=` text: what the daemon is doing."""
        s = self.states
        return (f"{len(self.running)} running, {s.get('due', 0)} due, "
                f"{s.get('paused', 0)} paused, {len(self.feeds)} feeds")

    # -- one run ----------------------------------------------------------------------

    async def _run(self, feed: FeedConfig, claim: schedules.Claim) -> None:
        """One run of a claimed feed; its outcome decides when it is next due."""
        outcome = "failed"
        try:
            summary = await sync_feed(
                db_url=self.db_url, pool=self.pool, feed=feed, fetcher=self.fetcher,
                executor=self.executor, reporter=reporter_for(feed.full_id, interactive=False))
            # A run stopped by a pause returns its row `cancelled`: not a failure.
            outcome = {"succeeded": "succeeded", "cancelled": "paused"}.get(
                str(summary.get("status")), "held")
        except FeedBusy:
            outcome = "busy"
            log.info("feed busy in another process; asking again soon", feed=feed.full_id)
        except FeedPaused:
            outcome = "paused"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            # The run recorded and logged its own failure; the schedule backs off.
            log.debug("run ended in failure", feed=feed.full_id, error=describe_failure(exc))
        finally:
            await asyncio.shield(self._release(feed, claim, outcome))
            self.running.pop(feed.full_id, None)
            if self.watcher is not None:
                self.watcher.run_finished(feed.full_id)
            self.wake.set()

    async def _release(self, feed: FeedConfig, claim: schedules.Claim, outcome: str) -> None:
        now = now_utc()
        failures = claim.consecutive_failures
        if outcome == "succeeded":
            failures = 0
            due = next_due(feed.full_id, feed.schedule, last_success=now, last_attempt=now,
                           failures=0, now=now)
        elif outcome in ("failed", "held"):
            failures += 1
            due = next_due(feed.full_id, feed.schedule, last_success=None, last_attempt=now,
                           failures=failures, now=now)
        elif outcome == "busy":
            due = now + timedelta(seconds=BUSY_RETRY_S)
        else:  # cancelled or paused: due as before, at once when it may run again
            due = now
        try:
            async with self.pool.acquire() as conn:
                await schedules.release_claim(conn, feed.full_id, due_at=due,
                                              failures=failures, outcome=outcome)
        except TRANSIENT as exc:
            log.warning("could not reschedule the feed; its claim ends with this daemon",
                        feed=feed.full_id, error=describe_failure(exc))

    # -- stopping ---------------------------------------------------------------------

    async def stop_runs(self, grace_s: float) -> bool:
        """Cancel in-flight runs (they end `cancelled`, resumable); True if all ended in time."""
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("run task failed while stopping",
                              error=describe_failure(task.exception() or Exception()))
            if pending:
                return False
        await self._drop_connection()
        return True
