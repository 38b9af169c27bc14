"""The Prometheus series zoningsync exposes, and the server that exposes them.

One registry per process (not the client library's global one, so tests and
the daemon never see each other's series). Labels stay bounded: hosts and
feeds, never URLs or keys. A labelled series exists at 0 from the first
request to a host or the first run of a feed (`touch_host`, `touch_feed`), so a
dashboard never waits for a first failure to draw its line.

`serve()` runs `/metrics` (the text format) and `/healthz` (200 while the loop
is responsive and the database answers, else 503 with the reason) on an aiohttp
server bound to the address it is given; it never binds 0.0.0.0 unless asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

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


def touch_feed(feed: str) -> None:
    """Create a feed's series at 0 (its first run)."""
    for status in RUN_STATUSES:
        runs_total.labels(feed, status)
    for op in WRITE_OPS:
        features_written_total.labels(feed, op)
    run_duration_seconds.labels(feed)


HealthCheck = Callable[[], Awaitable[str | None]]


@asynccontextmanager
async def serve(host: str, port: int, health: HealthCheck) -> AsyncIterator[int]:
    """Serve `/metrics` and `/healthz` until the block ends; yields the bound port.

    `health` returns None when healthy, else the reason (answered with 503).
    """
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
