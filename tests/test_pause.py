"""`zoningsync pause` / `resume` against a foreground `zoningsync sync` of a slowed feed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

ZONINGSYNC = [sys.executable, "-m", "zoningsync"]
FEED = "test-county/parcels"
# The bound: the run stops within this long of the pause process starting.
PAUSE_BOUND_S = 5.0


async def zoningsync(db_url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ})
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(2000, seed=41)) as running:
        yield running


async def state(db: asyncpg.Connection) -> tuple[Any, ...]:
    features = await db.fetchval(
        "SELECT md5(string_agg(source_key || encode(row_hash, 'hex') || h3 || zoning_code,"
        " '|' ORDER BY source_key)) FROM zoningsync.features")
    history = sorted(tuple(r) for r in await db.fetch(
        "SELECT op, count(*) FROM zoningsync.feature_history GROUP BY op"))
    return features, history


async def test_pause_stops_a_running_sync_in_seconds_and_resume_finishes_it_alike(
        db_url: str, db: asyncpg.Connection, cluster_url: str, tmp_path: Path,
        portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0), page_size=50)
    sources = str(tmp_path / "sources")
    portal.behaviours.latency_ms = 400  # 40 pages, 4 in flight: about 4 s of fetching
    sync = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, "sync", FEED, "--sources", sources, "--json",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    for _ in range(600):
        if await db.fetchval("SELECT count(*) FROM zoningsync.staged_pages") >= 2:
            break
        await asyncio.sleep(0.05)
    started = time.monotonic()
    code, out, err = await zoningsync(db_url, "pause", FEED, "--reason", "county republishing",
                                      "--json")
    assert code == 0, err
    assert json.loads(out)["feeds"] == [FEED]
    sync_out, _ = await sync.communicate()
    stopped = time.monotonic()
    [summary] = json.loads(sync_out)
    assert summary["status"] == "cancelled"
    assert summary["error"].startswith("paused: county republishing")
    assert stopped - started < PAUSE_BOUND_S
    arrivals = list(portal.app.stats.arrivals)
    assert max(arrivals) < stopped
    assert max(arrivals) - started < PAUSE_BOUND_S
    assert await db.fetchval("SELECT count(*) FROM zoningsync.staged_pages") < 40
    await asyncio.sleep(0.3)
    assert list(portal.app.stats.arrivals) == arrivals  # nothing asked after the stop

    portal.behaviours.latency_ms = 0
    code, _, err = await zoningsync(db_url, "sync", FEED, "--sources", sources)
    assert code == 1 and "county republishing" in err
    code, _, err = await zoningsync(db_url, "resume", FEED)
    assert code == 0, err
    code, out, err = await zoningsync(db_url, "sync", FEED, "--sources", sources, "--json")
    assert code == 0, err
    [resumed] = json.loads(out)
    assert resumed["id"] == summary["id"] and resumed["resumed"] == 1
    paused_state = await state(db)

    clean_db = db_url.replace("/zs_t_", "/zs_clean_")
    clean_name = urlsplit(clean_db).path.lstrip("/")
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f"CREATE DATABASE {clean_name} TEMPLATE zs_template")
        code, _, err = await zoningsync(clean_db, "sync", FEED, "--sources", sources)
        assert code == 0, err
        clean = await asyncpg.connect(clean_db)
        try:
            assert await state(clean) == paused_state
        finally:
            await clean.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {clean_name} WITH (FORCE)")
        await admin.close()


async def test_sync_force_syncs_a_paused_feed_and_leaves_it_paused(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    sources = str(tmp_path / "sources")
    code, _, err = await zoningsync(db_url, "pause", "test-county", "--reason", "audit",
                                    "--sources", sources)
    assert code == 0, err
    code, out, err = await zoningsync(db_url, "sync", FEED, "--sources", sources, "--force",
                                      "--json")
    assert code == 0, err
    assert json.loads(out)[0]["status"] == "succeeded"
    assert await db.fetchval("SELECT paused FROM zoningsync.feeds WHERE id = $1", FEED)


async def test_pause_and_resume_are_in_the_audit_log_with_who_and_where(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    sources = str(tmp_path / "sources")
    await zoningsync(db_url, "pause", FEED, "--reason", "bad layer", "--sources", sources)
    await zoningsync(db_url, "resume", FEED, "--sources", sources)
    code, out, err = await zoningsync(db_url, "audit", "--json")
    assert code == 0, err
    resumed, paused = json.loads(out)
    assert (paused["action"], paused["target"], paused["reason"], paused["outcome"]) == (
        "pause", FEED, "bad layer", "done")
    assert resumed["action"] == "resume"
    assert paused["hostname"] and paused["db_user"]


async def test_resuming_a_feed_that_is_not_paused_is_refused_in_one_line(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    code, out, err = await zoningsync(db_url, "resume", FEED, "--sources",
                                      str(tmp_path / "sources"))
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [f"zoningsync: refused: {FEED}: not paused; "
                                        "nothing to resume"]


async def test_pausing_an_unknown_feed_is_a_usage_error(db_url: str, tmp_path: Path,
                                                       portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    code, _, err = await zoningsync(db_url, "pause", "durham", "--reason", "x", "--sources",
                                    str(tmp_path / "sources"))
    assert code == 2
    assert "durham" in err and "Traceback" not in err
