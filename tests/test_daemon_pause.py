"""A pause from another process reaches a run on whichever daemon holds it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.daemon_helpers import start_daemon, wait_until, write_sources, zoningsync
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

PARCELS = 300
PAUSE_BOUND_S = 5.0  # the bound, from the start of the pause process


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=5)) as running:
        yield running


async def test_a_pause_stops_the_run_on_whichever_daemon_holds_it_and_resume_finishes_it(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    # 30 pages of a second each, four in flight: the run outlasts the pause command.
    [feed] = write_sources(tmp_path / "sources", portal.layer_url(0), 1, page_size=10)
    portal.behaviours.latency_ms = 1000
    daemons = [await start_daemon(db_url, tmp_path / "sources", tmp_path / f"d{i}.log",
                                  env={"ZONINGSYNC_NODE": f"node-{i}"}) for i in range(2)]
    try:
        async def fetching() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM zoningsync.staged_pages") >= 2)

        await wait_until(fetching)
        asked = time.monotonic()
        code, _, err = await zoningsync(db_url, "pause", feed, "--reason", "bad publish")
        assert code == 0, err

        async def stopped() -> Any:
            return await db.fetchrow("SELECT status, error FROM zoningsync.runs "
                                     "WHERE status <> 'running'")

        run = await wait_until(stopped, within_s=PAUSE_BOUND_S + 5)
        took = time.monotonic() - asked
        assert run["status"] == "cancelled" and "bad publish" in run["error"]
        assert took < PAUSE_BOUND_S, f"the run stopped {took:.1f} s after the pause"
        await asyncio.sleep(2.5)  # a tick of each daemon: neither may run a paused feed
        assert await db.fetchval("SELECT count(*) FROM zoningsync.runs") == 1

        portal.behaviours.latency_ms = 0
        code, _, err = await zoningsync(db_url, "resume", feed)
        assert code == 0, err

        async def finished() -> Any:
            return await db.fetchrow("SELECT id, resumed FROM zoningsync.runs "
                                     "WHERE status = 'succeeded'")

        done = await wait_until(finished, within_s=60)
    finally:
        codes = [await d.stop() for d in daemons]
    assert codes == [0, 0]
    assert done["id"] == 1 and done["resumed"] >= 1
    assert await db.fetchval("SELECT count(*) FROM zoningsync.features") == PARCELS
    assert await db.fetchval("SELECT count(*) FROM zoningsync.feature_history "
                             "WHERE op = 'insert'") == PARCELS
