"""The one run lifecycle every feed shares, whatever produces its records.

A run takes the feed's lease, registers the feed, refuses a paused one, opens
its `runs` row before anything can fail (or resumes the feed's interrupted run
when its settings are unchanged), then plans, fetches and stages, merges, and
finishes. Any failure after the row exists ends in that row as one redacted
line; a cancel leaves the run resumable; a run the retirement guard holds ends
`held`, writing nothing.

Spatial feeds (`sync.ArcgisRun`) and case feeds (`case_run.CaseRun`) differ in
their steps (what a plan is, how records are staged, how they merge), never in
this lifecycle: each implements the abstract steps below.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import structlog

from zoningsync.config import FeedConfig
from zoningsync.errors import RunFailed, ZoningsyncError, describe_failure
from zoningsync.fingerprint import plan_fingerprint
from zoningsync.http import Fetcher, FetchStats
from zoningsync.progress import Reporter
from zoningsync.run_metrics import RunObserver
from zoningsync.store import runs, staging
from zoningsync.store.connect import Conn
from zoningsync.store.feeds import (
    clear_reread,
    pause_state,
    paused_since,
    register_feed,
    reread_requested,
)
from zoningsync.store.lease import feed_lease
from zoningsync.store.pause_watch import PauseWatch

log = structlog.get_logger(__name__)

SETTINGS_CHANGED = ("the feed's settings that shape its rows changed since this run was "
                    "interrupted; its staging is dropped and a fresh full run replaces it")


class FeedPaused(ZoningsyncError):
    """The feed is paused; `zoningsync resume` lets it sync again."""


class Cursor(Protocol):
    """What a run decided before fetching, saved in `runs.cursor` for a resume."""

    mode: str

    def to_json(self) -> dict[str, Any]: ...


CursorT = TypeVar("CursorT", bound=Cursor)
ItemT = TypeVar("ItemT")


class RunPaused(Exception):
    """An operator paused the feed during the run: it stops at a boundary, resumable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FeedRun(ABC, Generic[CursorT]):
    """Everything one run of one feed needs; subclasses supply its steps."""

    def __init__(self, *, db_url: str, pool: asyncpg.Pool[Any], feed: FeedConfig,
                 fetcher: Fetcher, executor: Executor, reporter: Reporter) -> None:
        self.db_url = db_url
        self.pool = pool
        self.feed = feed
        self.fetcher = fetcher
        self.executor = executor
        self.reporter = reporter
        self.stats = FetchStats()
        self.delta = staging.StatsDelta(self.stats)
        self.started = time.monotonic()
        self.fingerprint = plan_fingerprint(feed)
        self.phase = "plan"  # plan, fetch or merge: where this attempt is
        self.settings_changed = False  # an interrupted run was dropped for it
        self.pause_watch: PauseWatch | None = None

    # -- the steps a kind of feed supplies ------------------------------------------

    @abstractmethod
    def _cursor_from_json(self, data: dict[str, Any]) -> CursorT:
        """The cursor a resumed run saved."""

    @abstractmethod
    async def _plan(self, conn: Conn, run_id: int, *, force_full: bool) -> CursorT:
        """Decide the run's read, save it on the run, and move the run to `fetch`."""

    @abstractmethod
    async def _fetch(self, conn: Conn, run_id: int, cursor: CursorT) -> None:
        """Fetch and stage every record of the plan; move the run to `merge`."""

    @abstractmethod
    async def _merge(self, conn: Conn, run_id: int, cursor: CursorT, *,
                     allow_mass_retire: bool) -> str | None:
        """Merge what was staged; or, writing nothing, say why the run is held."""

    @abstractmethod
    async def _finish(self, conn: Conn, run_id: int, cursor: CursorT) -> None:
        """Close a successful run: counters, marks, the feed's success, staging dropped."""

    async def _prepare(self, conn: Conn) -> None:
        """Work the feed needs before its first step (none by default)."""

    async def _settle(self) -> None:
        """Wait for background work the steps started, before the run is closed."""

    async def _abandon(self) -> None:
        """Stop background work the steps started, when the run ends early."""

    # -- pause boundaries -------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """An operator paused the feed since the run started: stop at the next boundary."""
        return self.pause_watch is not None and self.pause_watch.paused

    def pause_point(self) -> None:
        """A boundary: raise RunPaused if the feed was paused (the run ends resumable)."""
        if self.pause_watch is not None and self.pause_watch.paused:
            raise RunPaused(self.pause_watch.reason or "no reason given")

    async def until_paused(self, items: AsyncIterator[ItemT]) -> AsyncIterator[ItemT]:
        """`items` until the feed is paused; the source is closed then, asking for no more."""
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            while not self.paused:
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
                yield item

    # -- the lifecycle ----------------------------------------------------------------

    async def run(self, *, force_full: bool, allow_mass_retire: bool = False,
                  ignore_pause: bool = False) -> dict[str, Any]:
        """The run, start to end; whatever goes wrong after its row exists ends in that row.

        Any exception but a cancel marks the run failed with a one-line, redacted
        reason and raises RunFailed; a cancel marks it cancelled (resumable), and
        so does a pause during the run, which returns the run's row. A paused
        feed is refused unless `ignore_pause` (`sync --force`), which still stops
        at a pause made after the run started.
        """
        async with (feed_lease(self.db_url, self.feed.full_id) as lease,
                    self.pool.acquire() as conn):
            await register_feed(conn, self.feed)
            paused, reason = await pause_state(conn, self.feed.full_id)
            if paused and not ignore_pause:
                raise FeedPaused(
                    f"feed {self.feed.full_id} is paused ({reason or 'no reason given'}); "
                    f"run `zoningsync resume {self.feed.full_id}` to sync it again, or "
                    "`zoningsync sync --force` to sync it once anyway")
            self.pause_watch = PauseWatch(
                lease, self.feed.full_id,
                ignore_paused_at=await paused_since(conn, self.feed.full_id) if paused else None)
            await self.pause_watch.start()
            try:
                return await self._run_row(conn, lease, force_full=force_full,
                                           allow_mass_retire=allow_mass_retire)
            finally:
                await self.pause_watch.stop()

    async def _run_row(self, conn: Conn, lease: asyncpg.Connection[Any], *, force_full: bool,
                       allow_mass_retire: bool) -> dict[str, Any]:
        """The run after its lease and pause checks: its row, whatever happens to it.

        A `quarantine retry` request makes the run a full read, so every
        quarantined record is fetched again; the request is cleared once planned.
        """
        reread = await reread_requested(conn, self.feed.full_id)
        force_full = force_full or reread is not None
        stale = await runs.abandon_stale_runs(conn, lease_pid=lease.get_server_pid())
        if stale:
            log.warning("closed runs left unfinished too long; their staging is dropped",
                        runs=stale, older_than=str(runs.STALE_AFTER))
        run_id, cursor = await self._open_run(conn, force_full=force_full)
        observer = await RunObserver.start(conn, self.feed, run_id)
        log.info("run started", feed=self.feed.full_id, run=run_id, phase=self.phase)
        try:
            await self._prepare(conn)
            if cursor is None:
                cursor = await self._plan(conn, run_id, force_full=force_full)
                if reread is not None:
                    await clear_reread(conn, self.feed.full_id, reread)
            if self.phase == "fetch":
                await self._fetch(conn, run_id, cursor)
            held = await self._merge(conn, run_id, cursor,
                                     allow_mass_retire=allow_mass_retire)
            await self._settle()
            if held is None:
                await self._finish(conn, run_id, cursor)
            else:
                await self._hold(conn, run_id, held)
        except RunPaused as pause:
            await self._stop(conn, run_id, "cancelled",
                             f"paused: {pause.reason}; after `zoningsync resume "
                             f"{self.feed.full_id}`, {self._next_sync()}")
            log.info("run stopped: its feed was paused", feed=self.feed.full_id,
                     run=run_id, reason=pause.reason)
        except asyncio.CancelledError:
            await asyncio.shield(self._stop(conn, run_id, "cancelled", "cancelled; " +
                                            self._next_sync()))
            raise
        except Exception as exc:
            raise await self._failed(conn, run_id, exc) from exc
        finally:
            await self._abandon()
            await observer.end(conn)
        return await runs.get_run(conn, run_id)

    def _next_sync(self) -> str:
        return ("the next sync starts a new run" if self.phase == "plan"
                else "the next sync resumes it")

    async def _failed(self, conn: Conn, run_id: int, exc: Exception) -> RunFailed:
        """Record a failure of any kind in the run's row; the error to raise in its place."""
        message = describe_failure(exc)
        log.error("run failed", feed=self.feed.full_id, run=run_id, phase=self.phase,
                  error_type=type(exc).__name__, error=message)
        log.debug("run failure traceback", run=run_id, exc_info=exc)
        try:
            await self._stop(conn, run_id, "failed", message)
        except Exception as stop_exc:  # the connection may be what failed
            log.error("could not record the run's failure", run=run_id,
                      error=describe_failure(stop_exc))
        return RunFailed(f"run {run_id} of {self.feed.full_id} failed: {message}; "
                         f"{self._next_sync()}")

    async def _stop(self, conn: Conn, run_id: int, status: str, error: str) -> None:
        requests, retries, received = self.delta.take()
        await runs.add_fetch_stats(conn, run_id, requests, retries, received)
        await runs.fail_run(conn, run_id, status, error, self._elapsed())

    async def _hold(self, conn: Conn, run_id: int, reason: str) -> None:
        """End a held run: nothing merged, its staging dropped, the feed's success unchanged."""
        requests, retries, received = self.delta.take()
        await runs.add_fetch_stats(conn, run_id, requests, retries, received)
        await runs.close_run(conn, run_id, "held", reason, self._elapsed())
        log.warning("run held", feed=self.feed.full_id, run=run_id, reason=reason)

    def _elapsed(self) -> float:
        elapsed = time.monotonic() - self.started
        self.started = time.monotonic()
        return elapsed

    async def _open_run(self, conn: Conn, *, force_full: bool
                        ) -> tuple[int, CursorT | None]:
        """Resume the feed's interrupted run, or open a new one (its cursor: None, unplanned).

        An interrupted run staged under other settings (its fingerprint differs)
        is closed with its staging dropped, and the new run reads everything.
        """
        interrupted = await runs.interrupted_run(conn, self.feed.full_id)
        if interrupted is not None and interrupted.fingerprint != self.fingerprint:
            await runs.close_run(conn, interrupted.id, "cancelled", SETTINGS_CHANGED, 0.0)
            log.warning("the feed's settings changed since its run was interrupted; that "
                        "run's staging is dropped and a fresh full run starts",
                        feed=self.feed.full_id, run=interrupted.id)
            self.settings_changed = True
        elif interrupted is not None and interrupted.cursor and not (
            force_full and interrupted.mode != "full"
        ):
            await runs.resume_run(conn, interrupted.id)
            log.info("resuming interrupted run", run=interrupted.id, phase=interrupted.phase)
            self.phase = interrupted.phase
            return interrupted.id, self._cursor_from_json(interrupted.cursor)
        return await runs.start_run(conn, self.feed.full_id, self.fingerprint), None
