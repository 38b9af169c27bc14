"""The retirement guard on a case feed: a read that lost too many cases is held, cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import example_feed, stored_cases, sync_one
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


async def test_a_held_case_run_writes_nothing_and_leaves_no_staged_cases(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    # The prose agenda lists the open cases: a meeting later, the decided ones are gone.
    feed = replace(example_feed(tmp_path, portal, "agenda"), max_retire_fraction=0.01)
    await sync_one(db_url, tmp_path, feed)
    before = await stored_cases(db, feed.full_id)
    portal.cases.publish()
    held = await sync_one(db_url, tmp_path, feed)
    assert held["status"] == "held", held
    assert set(await stored_cases(db, feed.full_id)) == set(before)
    assert await db.fetchval("SELECT count(*) FROM zoningsync.staged_cases") == 0
    through = await sync_one(db_url, tmp_path, feed, allow_mass_retire=True)
    assert through["status"] == "succeeded", through.get("error")
    assert through["retired"] > 0
    assert await db.fetchval("SELECT count(*) FROM zoningsync.staged_cases") == 0
