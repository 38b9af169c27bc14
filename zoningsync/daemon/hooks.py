"""The webhook receiver as side tasks: signed hooks become run-now claims.

`webhook_app` answers each hook (202 before any work) and hands the feed to
`HookRequests.hook`, where the `HookCoalescer` absorbs it or makes it an ask
for a run, at its arrival time. One side task handles the asks in order: a
paused feed's is recorded in the audit log and runs nothing; any other becomes
`request_run_now`, which marks the feed due at once and NOTIFYs every daemon,
the same claim `sync --now` makes, so whichever daemon defines the feed may
take it.

The scheduler tells `run_started` and `run_finished` of this daemon's runs;
hooks during a run ask for one more after it. Runs on other daemons are not
seen: a request one of them claimed stops absorbing hooks after
`QUEUED_EXPIRE_S`, which is enough (at worst one more run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Literal

import asyncpg
import structlog
from aiohttp import web

from zoningsync.config import FeedConfig
from zoningsync.errors import ZoningsyncError, describe_failure
from zoningsync.store import schedules
from zoningsync.store.audit import record_action
from zoningsync.store.feeds import pause_state
from zoningsync.webhooks import HookCoalescer, hook_feeds, webhook_app

log = structlog.get_logger(__name__)

WILDCARD_HOSTS = ("0.0.0.0", "::")
# Errors of one request (a database blip): that hook is lost, the next one asks again.
REQUEST_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError,
                  asyncpg.InterfaceError, ZoningsyncError)

# Asks waiting for the database; past this a burst is dropped, not held in memory.
MAX_PENDING_ASKS = 1000

Kind = Literal["hook", "again"]
PAUSED_DETAIL: dict[Kind, str] = {
    "hook": "a signed hook arrived while the feed is paused: accepted, not run",
    "again": "signed hooks during the feed's last run asked for one more; paused: not run",
}


class HookRequests:
    """Hooks of this daemon's feeds in, run-now claims out, coalesced per feed."""

    def __init__(self, pool: asyncpg.Pool[Any], address: tuple[str, int],
                 coalescer: HookCoalescer | None = None) -> None:
        self.pool = pool
        self.address = address
        self.coalescer = coalescer if coalescer is not None else HookCoalescer()
        # Read by the receiver on every request, so a reload only refills it.
        self.feeds_by_path: dict[str, FeedConfig] = {}
        self._asks: asyncio.Queue[tuple[Kind, str]] = asyncio.Queue(MAX_PENDING_ASKS)

    def use_feeds(self, feeds: Iterable[FeedConfig]) -> None:
        """The feeds that accept hooks: this daemon's, at start and after each reload."""
        accepting = hook_feeds(list(feeds))
        self.feeds_by_path.clear()
        self.feeds_by_path.update(accepting)

    def app(self) -> web.Application:
        return webhook_app(self.feeds_by_path, self.hook)

    def hook(self, feed: str) -> None:
        """An accepted hook (already answered 202): absorbed here, or an ask for a run."""
        if self.coalescer.hook(feed, _now()):
            self._ask("hook", feed)
        else:
            log.debug("hook absorbed by a run asked for or running", feed=feed)

    def run_started(self, feed: str) -> None:
        self.coalescer.run_started(feed, _now())

    def run_finished(self, feed: str) -> None:
        if self.coalescer.run_finished(feed):
            self._ask("again", feed)

    def _ask(self, kind: Kind, feed: str) -> None:
        try:
            self._asks.put_nowait((kind, feed))
        except asyncio.QueueFull:
            self.coalescer.dropped(feed)
            log.warning("too many hooks waiting to ask for runs; this one is dropped",
                        feed=feed, waiting=MAX_PENDING_ASKS)

    async def run(self) -> None:
        """The side task: every ask handled in order, until cancelled."""
        while True:
            kind, feed = await self._asks.get()
            try:
                await self._handle(kind, feed)
            except REQUEST_ERRORS as exc:
                self.coalescer.dropped(feed)
                log.warning("a hook could not ask for a run; the next hook asks again",
                            feed=feed, error=describe_failure(exc))

    async def _handle(self, kind: Kind, feed: str) -> None:
        async with self.pool.acquire() as conn:
            paused, reason = await pause_state(conn, feed)
            if paused:
                self.coalescer.dropped(feed)
                await record_action(conn, "webhook", feed, outcome="refused",
                                    detail=PAUSED_DETAIL[kind], reason=reason)
                log.info("hook for a paused feed recorded, not run", feed=feed)
                return
            await schedules.request_run_now(conn, [feed])
        log.info("hook asked for a run", feed=feed, after=kind)


def _now() -> float:
    return asyncio.get_running_loop().time()


async def serve_webhooks(host: str, port: int, app: web.Application,
                         listening: asyncio.Future[int]) -> None:
    """Serve the receiver until cancelled; `listening` gets the bound port once open."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise ZoningsyncError(
                f"cannot receive webhooks on {host}:{port} ({exc.strerror or exc}); set "
                "--webhooks (ZONINGSYNC_WEBHOOKS, [webhooks] listen) to a free host:port, "
                "or off") from None
        bound = int(runner.addresses[0][1])
        if host in WILDCARD_HOSTS:
            log.warning("webhooks listen on every interface, as asked", address=host)
        log.info("webhooks serving", address=f"{host}:{bound}", port=bound)
        listening.set_result(bound)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
