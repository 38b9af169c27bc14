"""`zoningsync run` in real subprocesses: shared scheduling, signals, systemd, metrics, status."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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

        await wait_until(all_ran, timeout=120)
    finally:
        codes = [await d.stop() for d in daemons]
    assert codes == [0, 0]
    rows = await db.fetch("SELECT feed, started_at, finished_at FROM zoningsync.runs "
                          "ORDER BY feed, started_at")
    by_feed: dict[str, list[Any]] = {}
    for row in rows:
        by_feed.setdefault(row["feed"], []).append(row)
    for feed_runs in by_feed.values():
        for earlier, later in zip(feed_runs, feed_runs[1:], strict=False):
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
