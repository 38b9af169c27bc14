"""Prometheus series and the health check, read as Prometheus reads them.

Every test parses `generate_latest(REGISTRY)` (or `/metrics` over HTTP) with
`prometheus_client.parser`. The registry is process-wide and other tests feed
it too, so a test compares values before and after what it does, or reads the
series of a host only it talks to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.case_helpers import example_feed
from tests.portal_helpers import feed_config
from tests.test_sync import settings_for
from zoningsync import metrics
from zoningsync.breaker import CircuitBreaker
from zoningsync.http import Fetcher, FetchStats, HostLimits, RetryPolicy
from zoningsync.observability import LoopLagProbe
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import sync_feeds
from zoningsync.store.connect import create_pool

PARCELS = 300
FEED = "test-county/parcels"
ISSUE_SERIES = {  # sample name -> its labels, as issue 11 lists them
    "zoningsync_runs_total": {"feed", "status"},
    "zoningsync_run_duration_seconds_count": {"feed"},
    "zoningsync_features_written_total": {"feed", "op"},
    "zoningsync_quarantined_total": {"feed", "reason"},
    "zoningsync_http_requests_total": {"host", "code"},
    "zoningsync_http_retries_total": {"host"},
    "zoningsync_ratelimit_wait_seconds_total": {"host"},
    "zoningsync_breaker_open": {"host"},
    "zoningsync_event_loop_lag_seconds_count": set(),
    "zoningsync_runs_in_progress": set(),
    "zoningsync_feeds": {"state"},
    "zoningsync_feed_last_success_timestamp_seconds": {"feed"},
}
FAST_RETRY = RetryPolicy(max_retries=2, timeout_s=5.0, backoff_initial_s=0.01,
                         backoff_max_s=0.02)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape() -> Samples:
    return parse(generate_latest(metrics.REGISTRY).decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not there yet (a counter not yet started)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def has(samples: Samples, name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) in samples


def added(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def added_over(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """The increase summed over every series of `name` that has these labels."""
    def total(samples: Samples) -> float:
        return sum(v for (n, ls), v in samples.items()
                   if n == name and frozenset(labels.items()) <= ls)
    return total(after) - total(before)


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


async def sync(db_url: str, tmp_path: Path, portal: RunningPortal, *, key: str = '"PIN"'
               ) -> dict[str, object]:
    feed = feed_config(tmp_path, portal.layer_url(0), key=key)
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                 interactive=False)
    return summary


async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def host_of(server: TestServer) -> str:
    return f"127.0.0.1:{server.port}"


async def ok(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


# -- after a real sync ---------------------------------------------------------------


async def test_a_sync_leaves_every_series_of_the_issue_with_its_labels(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    await sync(db_url, tmp_path, portal)
    samples = scrape()
    for name, labels in ISSUE_SERIES.items():
        found = [set(dict(ls)) for n, ls in samples if n == name]
        assert found, f"{name} is missing"
        assert labels in found, f"{name} has labels {found}, not {labels}"


async def test_a_sync_counts_one_succeeded_run_its_writes_and_its_duration(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    before = scrape()
    summary = await sync(db_url, tmp_path, portal)
    after = scrape()
    assert summary["status"] == "succeeded"
    assert added(before, after, "zoningsync_runs_total", feed=FEED, status="succeeded") == 1
    for status in ("failed", "cancelled", "held"):
        assert added(before, after, "zoningsync_runs_total", feed=FEED, status=status) == 0
    inserted = added(before, after, "zoningsync_features_written_total", feed=FEED, op="insert")
    assert inserted == summary["inserted"] > 0
    assert added(before, after, "zoningsync_run_duration_seconds_count", feed=FEED) == 1
    assert value(after, "zoningsync_runs_in_progress") == value(
        before, "zoningsync_runs_in_progress")


async def test_a_sync_counts_its_quarantine_by_reason(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    before = scrape()
    summary = await sync(db_url, tmp_path, portal, key='"ZONING"')  # keys shared by many
    after = scrape()
    rows = await db.fetch("SELECT reason, count(*) AS n FROM zoningsync.quarantine GROUP BY 1")
    assert rows
    for row in rows:
        assert added(before, after, "zoningsync_quarantined_total", feed=FEED,
                     reason=row["reason"]) == row["n"]
    assert added_over(before, after, "zoningsync_quarantined_total",
                      feed=FEED) == summary["quarantined"]


async def test_a_sync_counts_its_requests_under_the_portals_host(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    host = urlsplit(portal.layer_url(0)).netloc
    before = scrape()
    summary = await sync(db_url, tmp_path, portal)
    after = scrape()
    assert added(before, after, "zoningsync_http_requests_total", host=host, code="200") > 0
    assert added_over(before, after, "zoningsync_http_requests_total",
                      host=host) == summary["requests"]
    assert value(after, "zoningsync_breaker_open", host=host) == 0


async def test_a_successful_sync_sets_its_feeds_last_success_time(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    started = time.time()
    await sync(db_url, tmp_path, portal)
    assert value(scrape(), "zoningsync_feed_last_success_timestamp_seconds",
                 feed=FEED) >= started


async def test_a_sync_samples_the_event_loop_lag(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    before = scrape()
    await sync(db_url, tmp_path, portal)
    assert added(before, scrape(), "zoningsync_event_loop_lag_seconds_count") > 0


async def test_a_held_run_counts_as_held_and_writes_nothing(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    await sync(db_url, tmp_path, portal)
    layer = portal.county.parcels
    layer.deleted[np.arange(int(layer.size * 0.4))] = True  # a publish caught midway
    before = scrape()
    held = await sync(db_url, tmp_path, portal)
    after = scrape()
    assert held["status"] == "held"
    assert added(before, after, "zoningsync_runs_total", feed=FEED, status="held") == 1
    assert added(before, after, "zoningsync_runs_total", feed=FEED, status="succeeded") == 0
    assert added_over(before, after, "zoningsync_features_written_total", feed=FEED) == 0


async def test_a_failed_run_and_its_resume_count_each_write_once(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with run_portal(County(1500, seed=11)) as portal:  # pages enough to fail midway
        feed = feed_config(tmp_path, portal.layer_url(0), page_size=100, max_retries=2)
        portal.behaviours.latency_ms = 30
        before = scrape()
        syncing = asyncio.create_task(sync_feeds(settings_for(db_url, tmp_path), [feed],
                                                 full=False, interactive=False))
        for _ in range(500):
            if await db.fetchval("SELECT count(*) FROM zoningsync.staged_pages") >= 3:
                break
            await asyncio.sleep(0.02)
        portal.behaviours.http_503_rate = 1.0
        [failed] = await syncing
        portal.behaviours.http_503_rate = 0.0
        portal.behaviours.latency_ms = 0
        [resumed] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                     interactive=False)
    after = scrape()
    assert (failed["status"], resumed["status"]) == ("failed", "succeeded")
    assert added(before, after, "zoningsync_runs_total", feed=FEED, status="failed") == 1
    assert added(before, after, "zoningsync_runs_total", feed=FEED, status="succeeded") == 1
    stored = await db.fetchval("SELECT count(*) FROM zoningsync.features")
    assert added(before, after, "zoningsync_features_written_total", feed=FEED,
                 op="insert") == stored == resumed["inserted"]


async def test_a_case_feeds_run_counts_its_cases_written(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    before = scrape()
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                 interactive=False)
    after = scrape()
    assert summary["status"] == "succeeded"
    assert added(before, after, "zoningsync_runs_total", feed=feed.full_id,
                 status="succeeded") == 1
    assert added(before, after, "zoningsync_features_written_total", feed=feed.full_id,
                 op="insert") == summary["inserted"] > 0
    assert has(after, "zoningsync_quarantined_total", feed=feed.full_id, reason="not_pdf")


# -- the fetcher, host by host ---------------------------------------------------------


async def test_a_hosts_series_exist_at_zero_after_its_first_request(
        fetcher: Fetcher) -> None:
    server = await serve(ok)
    host = host_of(server)
    try:
        await fetcher.get_json(str(server.make_url("/layer")), retry=FAST_RETRY,
                               stats=FetchStats())
    finally:
        await server.close()
    samples = scrape()
    for name in ("zoningsync_http_retries_total", "zoningsync_ratelimit_wait_seconds_total",
                 "zoningsync_breaker_open"):
        assert has(samples, name, host=host) and value(samples, name, host=host) == 0
    assert value(samples, "zoningsync_http_requests_total", host=host, code="200") == 1


async def test_a_retried_answer_counts_each_status_and_the_retry(fetcher: Fetcher) -> None:
    answers = iter([web.Response(status=503), web.json_response({"ok": True})])

    async def flaky(_request: web.Request) -> web.Response:
        return next(answers)

    server = await serve(flaky)
    host = host_of(server)
    try:
        await fetcher.get_json(str(server.make_url("/layer")), retry=FAST_RETRY,
                               stats=FetchStats())
    finally:
        await server.close()
    samples = scrape()
    assert value(samples, "zoningsync_http_requests_total", host=host, code="503") == 1
    assert value(samples, "zoningsync_http_requests_total", host=host, code="200") == 1
    assert value(samples, "zoningsync_http_retries_total", host=host) == 1


async def test_a_request_without_an_answer_in_time_counts_as_timeout(
        fetcher: Fetcher) -> None:
    async def silent(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    server = await serve(silent)
    host = host_of(server)
    try:
        with pytest.raises(Exception, match="no usable answer"):
            await fetcher.get_json(str(server.make_url("/layer")), stats=FetchStats(),
                                   retry=RetryPolicy(max_retries=0, timeout_s=0.2))
    finally:
        await server.close()
    assert value(scrape(), "zoningsync_http_requests_total", host=host,
                 code="timeout") == 1


async def test_a_refused_connection_counts_as_error(fetcher: Fetcher) -> None:
    server = await serve(ok)
    url, host = str(server.make_url("/layer")), host_of(server)
    await server.close()  # nothing listens on its port any more
    with pytest.raises(Exception, match="no usable answer"):
        await fetcher.get_json(url, stats=FetchStats(), retry=RetryPolicy(max_retries=0))
    assert value(scrape(), "zoningsync_http_requests_total", host=host, code="error") == 1


async def test_waits_for_the_hosts_token_bucket_are_counted(fetcher: Fetcher) -> None:
    server = await serve(ok)
    host = host_of(server)
    fetcher.set_host_limits(host, HostLimits(requests_per_second=50, burst=1))
    try:
        for _ in range(3):
            await fetcher.get_json(str(server.make_url("/layer")), retry=FAST_RETRY,
                                   stats=FetchStats())
    finally:
        await server.close()
    assert value(scrape(), "zoningsync_ratelimit_wait_seconds_total", host=host) > 0


def test_a_breaker_shows_open_from_its_opening_until_a_success_closes_it() -> None:
    now = [0.0]
    breaker = CircuitBreaker("breaker.test:1", threshold=2, cooldown_s=10,
                             clock=lambda: now[0])

    def shown() -> float:
        return value(scrape(), "zoningsync_breaker_open", host="breaker.test:1")

    breaker.record_failure("HTTP 500")
    assert shown() == 0
    breaker.record_failure("HTTP 500")
    assert shown() == 1
    now[0] = 11.0
    breaker.before_attempt()  # the half-open trial: not proven yet
    assert shown() == 1
    breaker.record_success()
    assert shown() == 0


# -- /metrics and /healthz over HTTP ------------------------------------------------------


async def test_serve_answers_metrics_and_healthz_on_loopback(
        db_url: str, http: aiohttp.ClientSession) -> None:
    probe = LoopLagProbe()
    probe.start()
    try:
        async with metrics.serve("127.0.0.1", 0, metrics.database_health(db_url, probe)
                                 ) as port:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                samples = parse(await response.text())
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert (response.status, await response.text()) == (200, "ok\n")
    finally:
        await probe.stop()
    assert has(samples, "zoningsync_feeds", state="scheduled")


async def test_healthz_turns_503_when_the_database_goes_away(
        db_url: str, cluster_url: str, http: aiohttp.ClientSession) -> None:
    pool = await create_pool(db_url, max_size=2)
    probe = LoopLagProbe()
    try:
        async with metrics.serve("127.0.0.1", 0, metrics.database_health(pool, probe)
                                 ) as port:
            healthz = f"http://127.0.0.1:{port}/healthz"
            async with http.get(healthz) as response:
                assert response.status == 200
            admin = await asyncpg.connect(cluster_url)
            try:
                await admin.execute(
                    f"DROP DATABASE {urlsplit(db_url).path.lstrip('/')} WITH (FORCE)")
            finally:
                await admin.close()
            async with http.get(healthz) as response:
                status, text = response.status, await response.text()
    finally:
        pool.terminate()
    assert status == 503
    assert text.startswith("unhealthy: database unreachable: ")
    password = urlsplit(db_url).password
    assert not password or password not in text


async def test_health_names_a_lagging_event_loop() -> None:
    probe = LoopLagProbe(interval_s=0.01)
    probe.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251 -- the loop blocked on purpose
        await asyncio.sleep(0.05)  # the probe wakes and records the stall
        problem = await metrics.database_health("postgresql://unused", probe,
                                                max_lag_s=0.2)()
    finally:
        await probe.stop()
    assert problem is not None and problem.startswith("event loop lagging: ")
