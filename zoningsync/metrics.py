"""The Prometheus series zoningsync exposes, and the server that exposes them.

One registry per process (not the client library's global one, so tests and
the daemon never see each other's series). Labels stay bounded: hosts and
feeds, never URLs or keys. A labelled series exists at 0 from the first
request to a host or the first run of a feed (`touch_host`, `touch_feed`), so a
dashboard never waits for a first failure to draw its line.

`serve()` runs `/metrics` (the text format) and `/healthz` (200 while the loop
is responsive and the database answers, else 503 with the reason) on an aiohttp
server bound to the address it is given; it never binds 0.0.0.0 unless asked.
`database_health()` makes that check.

Who feeds what: `http.py` the requests, retries and token-bucket waits,
`breaker.py` the breaker state, `run_metrics.py` (from `feed_run.py`) every
run's series, `observability.LoopLagProbe` the loop lag, and the daemon's
scheduler `zoningsync_feeds{state}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from zoningsync.errors import describe_failure
from zoningsync.store import observed
from zoningsync.store.connect import connect

REGISTRY = CollectorRegistry(auto_describe=True)

RUN_STATUSES = ("succeeded", "failed", "cancelled", "held")
WRITE_OPS = ("insert", "update", "retire")
FEED_STATES = ("scheduled", "running", "paused", "failing")

runs_total = Counter("zoningsync_runs", "Feed runs that ended, by status.",
                     ("feed", "status"), registry=REGISTRY)
run_duration_seconds = Histogram(
    "zoningsync_run_duration_seconds", "Wall time of feed runs.", ("feed",),
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200), registry=REGISTRY)
features_written_total = Counter(
    "zoningsync_features_written", "Features (and cases) a run wrote, by operation.",
    ("feed", "op"), registry=REGISTRY)
quarantined_total = Counter("zoningsync_quarantined", "Records or documents quarantined.",
                            ("feed", "reason"), registry=REGISTRY)
http_requests_total = Counter("zoningsync_http_requests", "HTTP requests by host and status.",
                              ("host", "code"), registry=REGISTRY)
http_retries_total = Counter("zoningsync_http_retries", "HTTP requests that were retries.",
                             ("host",), registry=REGISTRY)
ratelimit_wait_seconds_total = Counter(
    "zoningsync_ratelimit_wait_seconds", "Time requests waited for their host's token bucket.",
    ("host",), registry=REGISTRY)
breaker_open = Gauge("zoningsync_breaker_open", "1 while a host's circuit breaker is open.",
                     ("host",), registry=REGISTRY)
event_loop_lag_seconds = Histogram(
    "zoningsync_event_loop_lag_seconds", "How late the event loop woke up.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
runs_in_progress = Gauge("zoningsync_runs_in_progress", "Feed runs in progress in this process.",
                         registry=REGISTRY)
feeds = Gauge("zoningsync_feeds", "Feeds this process knows, by state.", ("state",),
              registry=REGISTRY)
feed_last_success_timestamp_seconds = Gauge(
    "zoningsync_feed_last_success_timestamp_seconds",
    "When each feed's last successful run finished (Unix time).", ("feed",),
    registry=REGISTRY)
webhooks_total = Counter("zoningsync_webhooks", "Webhook deliveries, by outcome.",
                         ("feed", "outcome"), registry=REGISTRY)

for _state in FEED_STATES:
    feeds.labels(_state)


def touch_host(host: str) -> None:
    """Create a host's series at 0 (its first request)."""
    http_retries_total.labels(host)
    ratelimit_wait_seconds_total.labels(host)
    breaker_open.labels(host)


def touch_feed(feed: str, reasons: Iterable[str] = ()) -> None:
    """Create a feed's series at 0 (its first run); `reasons`: its kind's quarantine reasons.

    The last-success timestamp starts at 0, "never", so that an alert on its
    age fires for a feed that has never succeeded too.
    """
    for status in RUN_STATUSES:
        runs_total.labels(feed, status)
    for op in WRITE_OPS:
        features_written_total.labels(feed, op)
    for reason in reasons:
        quarantined_total.labels(feed, reason)
    run_duration_seconds.labels(feed)
    feed_last_success_timestamp_seconds.labels(feed)


HealthCheck = Callable[[], Awaitable[str | None]]

# A loop later than this to wake is not responsive (a probe samples every 50 ms).
MAX_LOOP_LAG_S = 1.0
# The database must answer `SELECT 1` within this, connection included.
DATABASE_TIMEOUT_S = 2.0


class LagSource(Protocol):
    """What the health check reads from the loop-lag probe (`observability.LoopLagProbe`)."""

    def recent(self) -> float: ...


def database_health(database: asyncpg.Pool[Any] | str, probe: LagSource, *,
                    max_lag_s: float = MAX_LOOP_LAG_S,
                    timeout_s: float = DATABASE_TIMEOUT_S) -> HealthCheck:
    """The `/healthz` check: None while the loop is responsive and the database answers.

    `database` is the daemon's pool (a check borrows a connection) or a URL (a
    check opens and closes one). The reason of an unhealthy answer is one
    redacted line: "event loop lagging: 1.2 s" or "database unreachable: …".
    """
    async def ask() -> None:
        if isinstance(database, str):
            conn = await connect(database, connect_timeout=timeout_s)
            try:
                await observed.ping(conn)
            finally:
                await conn.close()
        else:
            async with database.acquire() as borrowed:
                await observed.ping(borrowed)

    async def check() -> str | None:
        lag = probe.recent()
        if lag > max_lag_s:
            return f"event loop lagging: {lag:.1f} s"
        try:
            async with asyncio.timeout(timeout_s):
                await ask()
        except TimeoutError:
            return f"database unreachable: no answer to SELECT 1 within {timeout_s:g} s"
        except Exception as exc:
            return f"database unreachable: {describe_failure(exc)}"
        return None

    return check


@asynccontextmanager
async def serve(host: str, port: int, health: HealthCheck) -> AsyncIterator[int]:
    """Serve `/metrics` and `/healthz` until the block ends; yields the bound port.

    `health` returns None when healthy, else the reason (answered with 503).
    aiohttp's server is imported here: `zoningsync sync` counts requests but
    serves no metrics, and should not pay for a server at start-up.
    """
    from aiohttp import web

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        problem = await health()
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"unhealthy: {problem}\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
