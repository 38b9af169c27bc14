"""Change tracking end to end: the simulated portal's extractChanges → real PostGIS.

Every test ends with the specification of invariant 8: a full read afterwards
finds every chunk equal to its checkpoint (it writes nothing), and the parcels
view and the checkpoints are what they were before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from tests.test_sync import count, run, settings_for
from zoningsync.config import FeedConfig
from zoningsync.portal.changes import GEN_BASE
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import sync_feeds

PARCELS = 1500


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        running.behaviours.change_tracking = True
        yield running


async def digest(db: asyncpg.Connection) -> tuple[str, list[tuple[Any, ...]]]:
    """md5 of the parcels view as a reader sees it, and every checkpoint."""
    view = await db.fetchval(
        "SELECT md5(string_agg(p::text, '|' ORDER BY p.source_key)) FROM zoningsync.parcels p")
    checkpoints = await db.fetch(
        "SELECT chunk, hash, row_count FROM zoningsync.chunk_checkpoints ORDER BY chunk")
    return view, [tuple(r) for r in checkpoints]


async def assert_a_full_read_agrees(db: asyncpg.Connection, db_url: str, tmp_path: Path,
                                    feed: FeedConfig) -> None:
    before = await digest(db)
    history = await count(db, "feature_history")
    summary = await run(db_url, tmp_path, feed, full=True)
    assert summary["chunks_written"] == 0
    assert await count(db, "feature_history") == history
    assert await digest(db) == before


def requests(portal: RunningPortal) -> dict[str, int]:
    return dict(portal.app.stats.requests)


async def test_a_first_read_records_the_generation_seen_before_reading(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    summary = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    assert summary["mode"] == "full"
    assert summary["server_gen"] == GEN_BASE
    assert await count(db, "feature_oids") == await count(db, "features")


async def test_a_one_percent_publish_synced_by_extract_changes_equals_a_full_read(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    published = portal.county.publish(0.01, seed=2)
    portal.app.stats.reset()
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental"
    assert summary["server_gen"] == GEN_BASE + 1
    asked = requests(portal)
    assert asked.get("extract") == 1
    assert "query_ids" not in asked and "query_keys" not in asked and "query" not in asked
    assert summary["inserted"] == published["added"]
    assert summary["retired"] == published["deleted"] > 0
    assert 0 < summary["updated"] <= published["changed"]
    retired = {r["source_key"] for r in await db.fetch(
        "SELECT source_key FROM zoningsync.feature_history WHERE op = 'retire'")}
    assert retired == set(published["deleted_pins"])
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_several_change_reads_in_a_row_still_equal_a_full_read(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    for seed in (3, 4, 5):
        portal.county.publish(0.01, seed=seed)
        assert (await run(db_url, tmp_path, feed))["mode"] == "incremental"
    assert await count(db, "feature_oids") == await count(db, "features")
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_a_change_set_over_the_transfer_limit_is_read_as_ids_through_query(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), page_size=40)
    await run(db_url, tmp_path, feed)
    portal.behaviours.max_record_count = 40
    portal.county.publish(0.05, seed=6)
    portal.app.stats.reset()
    summary = await run(db_url, tmp_path, feed)
    asked = requests(portal)
    assert summary["mode"] == "incremental"
    assert asked.get("extract") == 2  # features refused as too many, then ids
    assert asked.get("query", 0) >= 2 and "query_ids" not in asked
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_an_asynchronous_extract_is_polled_until_its_result_is_ready(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    portal.behaviours.extract_async = True
    portal.county.publish(0.01, seed=7)
    portal.app.stats.reset()
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental" and summary["server_gen"] == GEN_BASE + 1
    assert requests(portal).get("job", 0) >= 3  # two status polls and the result
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_an_expired_generation_falls_back_to_a_full_read_recorded_on_the_run(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    portal.behaviours.expired_generation = True
    published = portal.county.publish(0.01, seed=8)
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "full"
    assert any(f"server generation {GEN_BASE} expired" in w for w in summary["warnings"])
    assert summary["server_gen"] == GEN_BASE + 1
    assert summary["retired"] == published["deleted"]
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_a_service_root_that_cannot_be_read_means_the_edit_date_strategy(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    portal.behaviours.service_root_error = True
    feed = feed_config(tmp_path, portal.layer_url(0))
    first = await run(db_url, tmp_path, feed)
    portal.county.publish(0.01, seed=9)
    second = await run(db_url, tmp_path, feed)
    assert first["server_gen"] is None and second["server_gen"] is None
    assert second["mode"] == "incremental"
    assert "extract" not in requests(portal)
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_a_feed_refusing_change_tracking_reads_by_edit_date(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), extra='incremental = "edit_date"')
    await run(db_url, tmp_path, feed)
    portal.county.publish(0.01, seed=10)
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental" and summary["server_gen"] is None
    assert "extract" not in requests(portal) and "service" not in requests(portal)


async def test_a_change_read_cancelled_mid_run_resumes_to_exactly_a_full_read(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), page_size=20)
    await run(db_url, tmp_path, feed)
    portal.behaviours.max_record_count = 20
    portal.county.publish(0.05, seed=12)
    portal.behaviours.latency_ms = 40
    syncing = asyncio.create_task(sync_feeds(settings_for(db_url, tmp_path), [feed],
                                             full=False, interactive=False))
    for _ in range(500):
        if await count(db, "staged_pages") >= 1:
            break
        await asyncio.sleep(0.01)
    syncing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await syncing
    stopped = await db.fetchrow(
        "SELECT id, status, server_gen FROM zoningsync.runs ORDER BY id DESC LIMIT 1")
    assert stopped["status"] == "cancelled" and stopped["server_gen"] is None

    portal.behaviours.latency_ms = 0
    resumed = await run(db_url, tmp_path, feed)
    assert resumed["id"] == stopped["id"] and resumed["resumed"] == 1
    assert resumed["server_gen"] == GEN_BASE + 1
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_forcing_change_tracking_on_a_layer_without_it_fails_with_the_fix(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    portal.behaviours.change_tracking = False
    feed = feed_config(tmp_path, portal.layer_url(0), extra='incremental = "changes"')
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                 interactive=False)
    assert summary["status"] == "failed"
    assert "feeds.parcels.incremental: 'changes'" in summary["error"]
    assert "use 'auto' or 'edit_date'" in summary["error"]


async def test_a_change_read_interrupted_before_staging_its_extract_asks_again(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    """Its features were only in memory: the resumed run extracts again, from the same
    generation, and takes the newer answer's generation."""
    feed = feed_config(tmp_path, portal.layer_url(0))
    first = await run(db_url, tmp_path, feed)
    portal.county.publish(0.01, seed=13)
    cursor = {
        "mode": "incremental", "retirement": "changes", "layer_count": PARCELS,
        "oid_set_hash": "", "previous_mark": None, "notes": [], "server_gen": GEN_BASE + 1,
        "plan": {"strategy": "oids", "where": "1=1", "page_size": 500, "expected": 16,
                 "fingerprint": "", "pages": []},
        "changes": {"service_url": portal.service_url, "layer_id": 0, "since": GEN_BASE,
                    "inline": True, "deleted_oids": []},
    }
    interrupted = await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode, status, phase, cursor, fingerprint)"
        " VALUES ($1, 'incremental', 'failed', 'fetch', $2, $3) RETURNING id",
        feed.full_id, cursor, first["fingerprint"])
    published = portal.county.publish(0.01, seed=14)
    resumed = await run(db_url, tmp_path, feed)
    assert resumed["id"] == interrupted and resumed["resumed"] == 1
    assert resumed["server_gen"] == GEN_BASE + 2
    assert resumed["retired"] >= published["deleted"]
    await assert_a_full_read_agrees(db, db_url, tmp_path, feed)
