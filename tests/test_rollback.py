"""`zoningsync rollback`: a bad publish undone exactly, refusals, cascade, kill -9, cases."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from tests.portal_helpers import feed_config
from tests.test_case_store import CASES_FEED, OTHER, PENDING, sync_cases
from zoningsync.config import FeedConfig
from zoningsync.portal.county import DAY_MS, PUBLISH_CLOCK_MS, ZONES, County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import sync_feeds
from zoningsync.settings import Settings
from zoningsync.store.rollback import RollbackRefused, rollback

PARCELS = 1200
ZONINGSYNC = [sys.executable, "-m", "zoningsync"]
FEED = "test-county/parcels"

DIGESTS = {
    "parcels": "SELECT md5(coalesce(string_agg(p::text, '|' ORDER BY p.source_key), ''))"
               " FROM zoningsync.parcels p",
    "zoning_changes_recent": "SELECT md5(coalesce(string_agg(z::text, '|' ORDER BY z.id), ''))"
                             " FROM zoningsync.zoning_changes_recent z",
    "chunk_checkpoints": "SELECT md5(coalesce(string_agg(c::text, '|' ORDER BY c.feed,"
                         " c.chunk), '')) FROM zoningsync.chunk_checkpoints c",
}
CONTENT = ("SELECT md5(string_agg(source_key || zoning_code || encode(row_hash, 'hex')"
           " || h3 || ST_AsText(geom), '|' ORDER BY source_key)) FROM zoningsync.features")


def settings_for(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, state_dir=tmp_path, sources=tmp_path,
                    cluster_user="zoningsync", log_level="warning", config_file=None)


async def sync(db_url: str, tmp_path: Path, feed: FeedConfig, *, force: bool = False
               ) -> dict[str, Any]:
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                 interactive=False, force=force)
    return summary


async def digests(db: asyncpg.Connection) -> dict[str, str]:
    return {name: await db.fetchval(sql) for name, sql in DIGESTS.items()}


def bad_publish(county: County, *, rezoned: float = 0.3, deleted: float = 0.05,
                seed: int = 5) -> None:
    """A broken layer: `rezoned` of the parcels get another zoning code, `deleted` vanish."""
    county.version += 1
    clock = PUBLISH_CLOCK_MS + county.version * DAY_MS
    layer = county.parcels
    data = layer.data
    rng = np.random.default_rng(seed)
    live = np.nonzero(layer.live())[0]
    picked = rng.permutation(live)
    changed = picked[:round(len(live) * rezoned)]
    gone = picked[len(changed):len(changed) + round(len(live) * deleted)]
    data["ZONING"][changed] = (data["ZONING"][changed] + 1) % len(ZONES)
    data["LAST_EDITED_DATE"][changed] = clock
    layer.deleted[gone] = True


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=31)) as running:
        yield running


@pytest.fixture
def feed(tmp_path: Path, portal: RunningPortal) -> FeedConfig:
    return feed_config(tmp_path, portal.layer_url(0), page_size=400,
                       extra="max_retire_fraction = 0.5")


async def loaded_then_bad(db_url: str, db: asyncpg.Connection, tmp_path: Path,
                          portal: RunningPortal, feed: FeedConfig
                          ) -> tuple[dict[str, str], int]:
    """A good first load, its digests, then the bad publish synced: that run's id."""
    assert (await sync(db_url, tmp_path, feed))["status"] == "succeeded"
    before = await digests(db)
    bad_publish(portal.county)
    bad = await sync(db_url, tmp_path, feed)
    assert bad["status"] == "succeeded" and bad["updated"] > 0 and bad["retired"] > 0, bad
    return before, int(bad["id"])


async def test_rolling_back_a_bad_publish_restores_parcels_changes_and_checkpoints(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    before, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    assert await digests(db) != before
    result = await rollback(db_url, bad)
    assert await digests(db) == before
    assert result.undone[0].reverted > 0 and result.undone[0].reinserted > 0
    rolled = await db.fetchrow("SELECT * FROM zoningsync.runs WHERE id = $1",
                               result.rollback_run_id)
    assert (rolled["mode"], rolled["status"]) == ("rollback", "succeeded")
    assert (rolled["updated"], rolled["inserted"]) == (result.undone[0].reverted,
                                                      result.undone[0].reinserted)
    assert await db.fetchval("SELECT status FROM zoningsync.runs WHERE id = $1",
                             bad) == "rolled_back"


async def test_a_rollback_writes_history_for_every_row_it_restores_and_keeps_the_changes(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    changes = await db.fetchval("SELECT count(*) FROM zoningsync.zoning_changes WHERE run_id = $1",
                                bad)
    result = await rollback(db_url, bad)
    undone = result.undone[0]
    history = await db.fetchval("SELECT count(*) FROM zoningsync.feature_history"
                                " WHERE run_id = $1", result.rollback_run_id)
    assert history == undone.deleted + undone.reverted + undone.reinserted
    assert await db.fetchval(
        "SELECT count(*) FROM zoningsync.zoning_changes WHERE rolled_back_by = $1",
        result.rollback_run_id) == changes > 0


async def test_a_rollback_pauses_the_feed_and_the_run_after_resume_writes_the_bad_data_again(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    bad_content = await db.fetchval(CONTENT)
    bad_run = await db.fetchrow("SELECT * FROM zoningsync.runs WHERE id = $1", bad)
    await rollback(db_url, bad)
    assert await db.fetchrow("SELECT paused, paused_reason FROM zoningsync.feeds") == (
        True, f"rolled back run {bad}")
    refused = await sync(db_url, tmp_path, feed)
    assert refused["status"] == "failed" and f"rolled back run {bad}" in refused["error"]
    await db.execute("UPDATE zoningsync.feeds SET paused = false")
    again = await sync(db_url, tmp_path, feed)
    assert again["status"] == "succeeded"
    assert (again["updated"], again["retired"]) == (bad_run["updated"], bad_run["retired"])
    assert await db.fetchval(CONTENT) == bad_content


async def test_a_dry_run_counts_each_op_and_changes_nothing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    after = await digests(db)
    bad_run = await db.fetchrow("SELECT * FROM zoningsync.runs WHERE id = $1", bad)
    result = await rollback(db_url, bad, dry_run=True)
    [undo] = result.undone
    assert (undo.ops["update"], undo.ops["retire"]) == (bad_run["updated"], bad_run["retired"])
    assert len(undo.sample) == 10
    assert await digests(db) == after
    assert await db.fetchval("SELECT count(*) FROM zoningsync.admin_actions") == 0


async def test_a_rollback_is_refused_naming_a_later_run_that_touched_its_rows(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    bad_publish(portal.county, rezoned=0.5, deleted=0.0, seed=6)
    later = await sync(db_url, tmp_path, feed)
    after = await digests(db)
    with pytest.raises(RollbackRefused, match=f"run {later['id']}"):
        await rollback(db_url, bad)
    assert await digests(db) == after
    assert await db.fetchval("SELECT outcome FROM zoningsync.admin_actions") == "refused"


async def test_a_cascade_undoes_the_later_run_too_newest_first(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    before, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    bad_publish(portal.county, rezoned=0.5, deleted=0.02, seed=6)
    later = await sync(db_url, tmp_path, feed)
    result = await rollback(db_url, bad, cascade=True)
    assert [u.run_id for u in result.undone] == [later["id"], bad]
    assert await digests(db) == before


async def test_an_already_rolled_back_run_is_refused(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    await rollback(db_url, bad)
    with pytest.raises(RollbackRefused, match="already rolled back"):
        await rollback(db_url, bad)


async def test_rolling_back_a_case_run_restores_its_cases(db: asyncpg.Connection,
                                                         db_url: str) -> None:
    await sync_cases(db, [PENDING, OTHER])
    before = [tuple(r) for r in await db.fetch("SELECT * FROM zoningsync.cases ORDER BY id")]
    bad, _ = await sync_cases(db, [replace(PENDING, status="Approved", to_zoning="I-2"),
                                   replace(OTHER, case_number="Z-99-2024")])
    await db.execute("UPDATE zoningsync.runs SET status = 'succeeded', phase = 'done'")
    result = await rollback(db_url, bad)
    after = [tuple(r) for r in await db.fetch("SELECT * FROM zoningsync.cases ORDER BY id")]
    assert after == before
    assert (result.undone[0].case_ops["update"], result.undone[0].case_ops["insert"],
            result.undone[0].case_ops["retire"]) == (1, 1, 1)
    assert await db.fetchval("SELECT paused FROM zoningsync.feeds WHERE id = $1", CASES_FEED)


async def test_kill_9_mid_rollback_leaves_the_database_as_before(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)
    after = await digests(db)
    # The rollback pauses the feed last: holding that row stops it mid-transaction,
    # with every feature already restored in its transaction.
    blocker = await asyncpg.connect(db_url)
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("SELECT 1 FROM zoningsync.feeds WHERE id = $1 FOR NO KEY UPDATE", FEED)
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, "rollback", str(bad), "--json",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ})
    try:
        for _ in range(600):
            waiting = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%paused = true%'")
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the rollback never reached the feed's row"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        await lock.rollback()
        await blocker.close()
    for _ in range(200):  # the server notices the dead client once the lock is free
        if not await db.fetchval("SELECT count(*) FROM pg_stat_activity"
                                 " WHERE query LIKE '%paused = true%' AND pid <> pg_backend_pid()"):
            break
        await asyncio.sleep(0.05)
    assert await digests(db) == after
    assert await db.fetchval("SELECT status FROM zoningsync.runs WHERE id = $1", bad) == "succeeded"
    assert await db.fetchval("SELECT count(*) FROM zoningsync.runs WHERE mode = 'rollback'") == 0


async def test_the_rollback_command_answers_json_and_exits_one_when_refused(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        feed: FeedConfig) -> None:
    _, bad = await loaded_then_bad(db_url, db, tmp_path, portal, feed)

    async def command(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *ZONINGSYNC, "--database-url", db_url, "rollback", *args, "--json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await command(str(bad))
    assert code == 0, err
    answer = json.loads(out)
    assert answer["ok"] and answer["runs"] == [bad] and answer["paused"]
    code, out, err = await command(str(bad))
    assert code == 1
    assert "already rolled back" in json.loads(out)["error"]
    assert len(err.strip().splitlines()) == 1
