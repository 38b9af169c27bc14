"""`zoningsync run` in real subprocesses: shared scheduling, signals, systemd, metrics, status."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_helpers import start_daemon, wait_until, write_sources, zoningsync
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

GRACE_S = 10


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(300, seed=5)) as running:
        yield running


async def succeeded_feeds(db: asyncpg.Connection[Any]) -> set[str]:
    rows = await db.fetch("SELECT DISTINCT feed FROM zoningsync.runs WHERE status = 'succeeded'")
    return {r["feed"] for r in rows}


async def test_two_daemons_run_every_feed_and_never_one_feed_twice_at_once(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    feeds = write_sources(tmp_path / "sources", portal.layer_url(0), 20, schedule="every 30s")
    daemons = [await start_daemon(db_url, tmp_path / "sources", tmp_path / f"d{i}.log",
                                  env={"ZONINGSYNC_NODE": f"node-{i}"}) for i in range(2)]
    try:
        async def all_ran() -> bool:
            return await succeeded_feeds(db) == set(feeds)

        await wait_until(all_ran, within_s=120)
    finally:
        codes = [await d.stop() for d in daemons]
    assert codes == [0, 0]
    rows = await db.fetch("SELECT feed, started_at, finished_at FROM zoningsync.runs "
                          "ORDER BY feed, started_at")
    by_feed: dict[str, list[Any]] = {}
    for row in rows:
        by_feed.setdefault(row["feed"], []).append(row)
    for feed_runs in by_feed.values():
        for earlier, later in itertools.pairwise(feed_runs):
            assert earlier["finished_at"] <= later["started_at"]


async def test_sigterm_mid_run_exits_zero_and_leaves_the_run_resumable(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    write_sources(tmp_path / "sources", portal.layer_url(0), 1, page_size=20)
    portal.behaviours.latency_ms = 200
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                env={"ZONINGSYNC_SHUTDOWN_GRACE_S": str(GRACE_S)})

    async def fetching() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM zoningsync.staged_pages") >= 2)

    await wait_until(fetching)
    daemon.signal(signal.SIGTERM)
    code = await asyncio.wait_for(daemon.proc.wait(), GRACE_S + 5)
    assert code == 0
    row = await db.fetchrow("SELECT status, phase FROM zoningsync.runs")
    assert row is not None and row["status"] == "cancelled" and row["phase"] == "fetch"
    assert await db.fetchval("SELECT claimed_by FROM zoningsync.schedules") is None


async def test_status_json_shows_a_running_feed_on_its_node(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    [feed] = write_sources(tmp_path / "sources", portal.layer_url(0), 1, page_size=20)
    portal.behaviours.latency_ms = 200
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                env={"ZONINGSYNC_NODE": "node-a"})
    try:
        async def running() -> bool:
            return bool(await db.fetchval(
                "SELECT count(*) FROM zoningsync.runs WHERE status = 'running'"))

        await wait_until(running)
        code, out, err = await zoningsync(db_url, "status", "--json")
    finally:
        await daemon.stop()
    assert code == 0, err
    [row] = json.loads(out)
    assert row["feed"] == feed
    assert row["running_on"] == "node-a"
    assert row["paused"] is False
    assert row["last_run"]["status"] == "running"
    assert set(row) == {"feed", "paused", "pause_reason", "running_on", "last_run",
                        "next_due", "lag_s", "last_success_at"}


async def test_kill_9_mid_run_its_feed_is_resumed_by_the_other_daemon_to_the_full_result(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    write_sources(tmp_path / "sources", portal.layer_url(0), 1, page_size=20)
    portal.behaviours.latency_ms = 150
    first = await start_daemon(db_url, tmp_path / "sources", tmp_path / "a.log",
                               env={"ZONINGSYNC_NODE": "node-a"})

    async def fetching() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM zoningsync.staged_pages") >= 3)

    await wait_until(fetching)
    first.signal(signal.SIGKILL)
    await first.proc.wait()
    assert await db.fetchval("SELECT claimed_by FROM zoningsync.schedules") == "node-a"
    portal.behaviours.latency_ms = 0
    second = await start_daemon(db_url, tmp_path / "sources", tmp_path / "b.log",
                                env={"ZONINGSYNC_NODE": "node-b"})
    try:
        async def done() -> Any:
            return await db.fetchrow("SELECT id, resumed FROM zoningsync.runs "
                                     "WHERE status = 'succeeded'")

        run = await wait_until(done)
    finally:
        assert await second.stop() == 0
    assert run["id"] == 1 and run["resumed"] == 1
    assert await db.fetchval("SELECT count(*) FROM zoningsync.runs") == 1
    assert await db.fetchval("SELECT count(DISTINCT source_key) FROM zoningsync.features") == 300
    assert await db.fetchval("SELECT count(*) FROM zoningsync.features") == 300
    assert await db.fetchval("SELECT count(*) FROM zoningsync.feature_history "
                             "WHERE op = 'insert'") == 300


BROKEN = '[jurisdiction]\nid = "test-county"\n[[feeds]]\nid = "parcels-00"\nkind = "nope"\n'


async def test_sighup_with_a_broken_file_keeps_the_old_set_and_adds_the_good_files(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    sources = tmp_path / "sources"
    write_sources(sources, portal.layer_url(0), 1)
    daemon = await start_daemon(db_url, sources, tmp_path / "d.log")
    try:
        async def ready() -> Any:
            return daemon.event("daemon ready")

        await wait_until(ready)
        (sources / "test-county.toml").write_text(BROKEN)
        write_sources(sources, portal.layer_url(0), 1, jurisdiction="other-county")
        daemon.signal(signal.SIGHUP)

        async def reloaded() -> Any:
            return daemon.event("sources reloaded")

        event = await wait_until(reloaded)
    finally:
        assert await daemon.stop() == 0
    assert (event["feeds"], event["errors"]) == (2, 1)
    [why] = [e for e in daemon.events()
             if e["event"] == "reload: source file does not load; its old definition stays"]
    assert "kind" in why["error"]
    assert await db.fetchval("SELECT count(*) FROM zoningsync.schedules") == 2


async def test_ready_and_watchdog_pings_reach_the_notify_socket_at_half_the_interval(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    write_sources(tmp_path / "sources", portal.layer_url(0), 2, page_size=20)
    portal.behaviours.latency_ms = 50  # runs are in progress while the pings are counted
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    messages: list[tuple[float, str]] = []
    try:
        while len([m for m in messages if m[1] == "WATCHDOG=1"]) < 8:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
            messages.append((time.monotonic(), data.decode()))
        daemon.signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for _, m in messages):
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 15)
            messages.append((time.monotonic(), data.decode()))
    finally:
        await daemon.stop()
        sock.close()
    ready_at = next(t for t, m in messages if "READY=1" in m.split("\n"))
    ready_text = next(m for _, m in messages if "READY=1" in m)
    assert "STATUS=" in ready_text
    pings = [t for t, m in messages if m == "WATCHDOG=1" and t >= ready_at]
    assert len(pings) >= 8
    gaps = [b - a for a, b in itertools.pairwise([ready_at, *pings])]
    assert max(gaps) <= 0.8


async def metrics_port(daemon: Any) -> int:
    async def serving() -> Any:
        return daemon.event("metrics serving")

    return int((await wait_until(serving))["port"])


SERIES = ("zoningsync_runs_total", "zoningsync_run_duration_seconds_bucket",
          "zoningsync_features_written_total", "zoningsync_http_retries_total",
          "zoningsync_ratelimit_wait_seconds_total", "zoningsync_breaker_open",
          "zoningsync_event_loop_lag_seconds_bucket", "zoningsync_runs_in_progress",
          "zoningsync_feeds", "zoningsync_feed_last_success_timestamp_seconds")


async def test_metrics_hold_the_daemons_series_after_a_run(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    [feed] = write_sources(tmp_path / "sources", portal.layer_url(0), 1)
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                "--metrics", "127.0.0.1:0")
    try:
        port = await metrics_port(daemon)
        await wait_until(lambda: succeeded_feeds(db))
        async with http.get(f"http://127.0.0.1:{port}/metrics") as answer:
            assert answer.status == 200
            text = await answer.text()
    finally:
        assert await daemon.stop() == 0
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    names = {s.name for s in samples}
    assert set(SERIES) <= names
    [last] = [s for s in samples if s.name == "zoningsync_feed_last_success_timestamp_seconds"]
    assert last.labels == {"feed": feed} and last.value > 0
    states = {s.labels["state"] for s in samples if s.name == "zoningsync_feeds"}
    assert states == {"scheduled", "running", "paused", "failing"}


async def test_healthz_turns_503_when_the_database_goes_away(
        db_url: str, cluster_url: str, tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    write_sources(tmp_path / "sources", portal.layer_url(0), 1)
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                "--metrics", "127.0.0.1:0")
    try:
        url = f"http://127.0.0.1:{await metrics_port(daemon)}/healthz"
        async with http.get(url) as answer:
            assert answer.status == 200
        admin = await asyncpg.connect(cluster_url)
        try:
            await admin.execute(f'DROP DATABASE "{urlsplit(db_url).path[1:]}" WITH (FORCE)')
        finally:
            await admin.close()

        async def unhealthy() -> str | None:
            async with http.get(url) as answer:
                return await answer.text() if answer.status == 503 else None

        reason = await wait_until(unhealthy, within_s=30, every=0.3)
    finally:
        daemon.proc.kill()
        await daemon.proc.wait()
    assert "database" in reason


async def test_sync_now_asks_a_running_daemon_and_prints_the_run_id(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    [feed] = write_sources(tmp_path / "sources", portal.layer_url(0), 1)
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log")
    try:
        await wait_until(lambda: succeeded_feeds(db))
        code, out, err = await zoningsync(db_url, "sync", feed, "--now", "--sources",
                                          str(tmp_path / "sources"))
    finally:
        assert await daemon.stop() == 0
    assert code == 0, err
    assert out.strip() == str(await db.fetchval("SELECT max(id) FROM zoningsync.runs"))
    assert await db.fetchval("SELECT count(*) FROM zoningsync.runs") == 2


async def test_sync_now_without_a_daemon_runs_in_the_foreground(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    [feed] = write_sources(tmp_path / "sources", portal.layer_url(0), 1)
    code, out, err = await zoningsync(db_url, "sync", feed, "--now", "--json", "--sources",
                                      str(tmp_path / "sources"))
    assert code == 0, err
    [summary] = json.loads(out)
    assert summary["status"] == "succeeded"


async def test_status_works_with_no_daemon_and_an_empty_database(db_url: str) -> None:
    code, out, err = await zoningsync(db_url, "status", "--json")
    assert code == 0, err
    assert json.loads(out) == []
