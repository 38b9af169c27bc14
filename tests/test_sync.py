"""A feed run end to end: simulated portal → real PostGIS, with history and checkpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from zoningsync.config import FeedConfig
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import sync_feeds
from zoningsync.settings import Settings
from zoningsync.store.lease import LEASE_NAMESPACE

PARCELS = 1500


def settings_for(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, state_dir=tmp_path, sources=tmp_path,
                    cluster_user="zoningsync", log_level="warning", config_file=None)


async def run(db_url: str, tmp_path: Path, feed: FeedConfig, *, full: bool = False
              ) -> dict[str, Any]:
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=full,
                                 interactive=False)
    assert summary["status"] == "succeeded", summary
    return summary


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


async def table_state(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT source_key, parcel_id, zoning_code, zoning_desc, attrs, row_hash, h3,"
        " ST_AsBinary(geom) FROM zoningsync.features ORDER BY source_key")
    return [tuple(r) for r in rows]


async def count(db: asyncpg.Connection, table: str, where: str = "true") -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM zoningsync.{table} WHERE {where}"))


async def test_a_first_run_stores_or_quarantines_every_record(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    summary = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    stored = await count(db, "features")
    quarantined = await count(db, "quarantine")
    assert summary["mode"] == "full"
    assert summary["fetched"] == PARCELS
    assert summary["fetched"] == stored + quarantined
    assert summary["inserted"] == stored
    assert summary["quarantined"] == quarantined
    assert await count(db, "feature_history", "op = 'insert'") == stored
    assert summary["chunks_written"] == summary["chunks_total"] > 0
    assert await count(db, "chunk_checkpoints") == summary["chunks_written"]


async def test_a_first_load_stores_pages_while_later_ones_are_fetched(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    portal.behaviours.latency_ms = 40
    syncing = asyncio.create_task(run(db_url, tmp_path, feed_config(
        tmp_path, portal.layer_url(0), page_size=100)))
    stored_while_fetching = 0
    while not syncing.done() and not stored_while_fetching:
        phase = await db.fetchval("SELECT phase FROM zoningsync.runs")
        if phase == "fetch":
            stored_while_fetching = await count(db, "features")
        await asyncio.sleep(0.02)
    summary = await syncing
    assert stored_while_fetching > 0
    assert summary["inserted"] == await count(db, "features")
    assert await count(db, "feature_history", "op = 'insert'") == summary["inserted"]
    assert await count(db, "feature_history", "op <> 'insert'") == 0


async def test_a_first_load_checkpoints_exactly_the_chunks_it_stored(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ($1, $2, $3, 'parcels', 'arcgis', $4)",
        feed.full_id, feed.jurisdiction, feed.id, feed.url)
    await db.execute(
        "INSERT INTO zoningsync.runs (feed, mode, status, phase) VALUES ($1, 'full', 'failed',"
        " 'done')", feed.full_id)
    await db.execute(
        "INSERT INTO zoningsync.chunk_checkpoints (feed, chunk, hash, row_count, run_id)"
        " SELECT $1, 'emptied-long-ago', '\\x00', 3, max(id) FROM zoningsync.runs", feed.full_id)
    summary = await run(db_url, tmp_path, feed)
    stored = await db.fetch(
        "SELECT h3 AS chunk, sha256(string_agg(row_hash, ''::bytea ORDER BY row_hash)) AS hash,"
        " count(*)::integer AS row_count FROM zoningsync.features GROUP BY h3 ORDER BY h3")
    checkpoints = await db.fetch(
        "SELECT chunk, hash, row_count FROM zoningsync.chunk_checkpoints ORDER BY chunk")
    assert [tuple(r) for r in checkpoints] == [tuple(r) for r in stored]
    assert summary["chunks_written"] == summary["chunks_total"] == len(stored)


async def test_a_second_run_of_unchanged_data_writes_nothing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    before = await table_state(db)
    history = await count(db, "feature_history")
    summary = await run(db_url, tmp_path, feed)
    assert (summary["inserted"], summary["updated"], summary["retired"]) == (0, 0, 0)
    assert summary["chunks_written"] == 0
    assert await count(db, "feature_history") == history
    assert await table_state(db) == before


async def test_a_full_rerun_of_unchanged_data_skips_every_chunk(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    summary = await run(db_url, tmp_path, feed, full=True)
    assert summary["mode"] == "full"
    assert summary["chunks_written"] == 0
    assert summary["chunks_skipped"] == summary["chunks_total"] > 0
    assert summary["unchanged"] == await count(db, "features")


async def test_a_changed_county_writes_only_changes_with_history(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    history = await count(db, "feature_history")
    published = portal.county.publish(0.05, seed=2)
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental"
    assert summary["retired"] == published["deleted"]
    assert summary["inserted"] == published["added"]
    assert 0 < summary["updated"] <= published["changed"]
    written = summary["inserted"] + summary["updated"] + summary["retired"]
    assert await count(db, "feature_history") - history == written
    retired_keys = {r["source_key"] for r in await db.fetch(
        "SELECT source_key FROM zoningsync.feature_history WHERE op = 'retire'")}
    assert retired_keys == set(published["deleted_pins"])
    changes = await db.fetch("SELECT old_code, new_code FROM zoningsync.zoning_changes")
    assert changes and all(c["old_code"] != c["new_code"] for c in changes)


async def test_an_incremental_run_leaves_checkpoints_a_full_read_agrees_with(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    portal.county.publish(0.05, seed=3)
    assert (await run(db_url, tmp_path, feed))["mode"] == "incremental"
    history = await count(db, "feature_history")
    summary = await run(db_url, tmp_path, feed, full=True)
    assert summary["chunks_written"] == 0
    assert await count(db, "feature_history") == history


async def test_renumbered_object_ids_change_nothing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    before = await table_state(db)
    portal.county.republish()
    summary = await run(db_url, tmp_path, feed)
    assert (summary["inserted"], summary["updated"], summary["retired"]) == (0, 0, 0)
    assert await table_state(db) == before


async def test_incremental_deletions_without_edits_are_found_by_the_key_diff(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    published = portal.county.publish(0.02, seed=4)
    summary = await run(db_url, tmp_path, feed)
    assert summary["retired"] == published["deleted"] > 0


async def test_quarantine_holds_each_rejected_record_with_a_reason(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with run_portal(County(3000, seed=3)) as portal:  # holds null and bow-tie parcels
        summary = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    reasons = {r["reason"] for r in await db.fetch("SELECT reason FROM zoningsync.quarantine")}
    assert "null_geometry" in reasons
    assert summary["repaired"] > 0  # the county's bow-ties are repaired, not rejected
    raw = await db.fetchval("SELECT raw FROM zoningsync.quarantine LIMIT 1")
    assert "attributes" in raw


async def test_duplicate_keys_are_all_quarantined_and_counted(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), key='"ZONING"')
    summary = await run(db_url, tmp_path, feed)
    assert summary["duplicates"] > 0
    assert await count(db, "quarantine", "reason = 'duplicate_key'") == summary["duplicates"]
    assert summary["fetched"] == await count(db, "features") + summary["quarantined"]


def share_a_key_across_pages(portal: RunningPortal) -> str:
    """Give parcel 1200 the key of parcel 10: page 0 is stored at once; page 2 then meets it."""
    pins = portal.county.parcels.data["PIN"]
    pins[1200] = pins[10]
    return f"{pins[10]:010d}"


async def test_a_first_load_quarantines_both_copies_of_a_key_found_on_two_pages(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    shared = share_a_key_across_pages(portal)
    summary = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    copies = await db.fetch(
        "SELECT raw FROM zoningsync.quarantine WHERE reason = 'duplicate_key'"
        " AND source_key = $1", shared)
    assert summary["duplicates"] == len(copies) == 2
    assert all(c["raw"]["geometry"]["type"] == "MultiPolygon" for c in copies)
    assert all(c["raw"]["parcel_id"] == shared for c in copies)
    assert await count(db, "features", f"source_key = '{shared}'") == 0
    assert summary["fetched"] == await count(db, "features") + summary["quarantined"]
    assert summary["inserted"] == await count(db, "features")


async def test_a_first_load_leaves_no_history_for_a_key_it_quarantined_as_duplicate(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    """The copy stored before its twin arrived was never the feed's row."""
    shared = share_a_key_across_pages(portal)
    summary = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    assert await count(db, "feature_history", f"source_key = '{shared}'") == 0
    assert summary["retired"] == 0
    assert await count(db, "feature_history") == await count(db, "features")


@pytest.mark.parametrize("crs", [2264, 102100])
async def test_projected_counties_land_near_raleigh(db_url: str, db: asyncpg.Connection,
                                                    tmp_path: Path, crs: int) -> None:
    async with run_portal(County(300, seed=5, crs=crs)) as portal:
        await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    box = await db.fetchrow("SELECT ST_XMin(e) AS x0, ST_XMax(e) AS x1, ST_YMin(e) AS y0,"
                            " ST_YMax(e) AS y1 FROM (SELECT ST_Extent(geom) AS e"
                            " FROM zoningsync.features) s")
    assert -79.0 < box["x0"] < box["x1"] < -78.3
    assert 35.5 < box["y0"] < box["y1"] < 36.1


async def test_zoning_districts_feed_fills_the_districts_view(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(1), feed_id="zoning",
                       kind="zoning_districts", key='"ZONE_ID"',
                       fields='zoning_code = "ZONE_CODE"\nzoning_desc = "ZONE_DESC"')
    summary = await run(db_url, tmp_path, feed)
    assert summary["inserted"] == await count(db, "zoning_districts") > 0


async def stale_run(db: asyncpg.Connection, feed: str, *, staged_from: str,
                    age: timedelta = timedelta(days=8)) -> int:
    """A run of `feed` left unfinished `age` ago, with staged rows copied from features."""
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ($1, 'old', 'feed', 'parcels', 'arcgis', 'http://127.0.0.1:9/x')"
        " ON CONFLICT DO NOTHING", feed)
    run_id: int = await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode, status, phase, started_at)"
        " VALUES ($1, 'full', 'failed', 'fetch', now() - $2::interval) RETURNING id", feed,
        age)
    await db.execute(
        "INSERT INTO zoningsync.staged_rows (run_id, page_id, source_oid, source_key, chunk,"
        " attrs, wkb, row_hash) SELECT $1, 'p0', id, source_key, h3, attrs, ST_AsBinary(geom),"
        " row_hash FROM zoningsync.features WHERE feed = $2", run_id, staged_from)
    return run_id


async def test_a_week_old_unfinished_run_is_closed_and_its_staging_dropped(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    gone = await stale_run(db, "old/feed", staged_from=feed.full_id)
    own = await stale_run(db, feed.full_id, staged_from=feed.full_id)
    summary = await run(db_url, tmp_path, feed)
    assert summary["id"] not in (gone, own) and summary["resumed"] == 0
    for run_id in (gone, own):
        status, phase, error = await db.fetchrow(
            "SELECT status, phase, error FROM zoningsync.runs WHERE id = $1", run_id)
        assert (status, phase) == ("failed", "done")
        assert "abandoned: unfinished for over 7 days" in error
    assert await count(db, "staged_rows") == 0


async def test_a_stale_run_whose_feed_lease_is_held_is_left_alone(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    busy = await stale_run(db, "old/feed", staged_from=feed.full_id)
    await db.execute("SELECT pg_advisory_lock($1, hashtext('old/feed'))", LEASE_NAMESPACE)
    await run(db_url, tmp_path, feed)
    assert await db.fetchval("SELECT phase FROM zoningsync.runs WHERE id = $1", busy) == "fetch"
    assert await count(db, "staged_rows", f"run_id = {busy}") > 0


async def test_a_server_failing_mid_fetch_fails_the_run_cleanly_and_the_rerun_resumes(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), page_size=100, max_retries=2)
    portal.behaviours.latency_ms = 30
    syncing = asyncio.create_task(sync_feeds(settings_for(db_url, tmp_path), [feed],
                                             full=False, interactive=False))
    for _ in range(500):
        if await count(db, "staged_pages") >= 3:
            break
        await asyncio.sleep(0.02)
    portal.behaviours.http_503_rate = 1.0
    [failed] = await syncing
    assert failed["status"] == "failed"
    assert "503" in failed["error"] or "circuit" in failed["error"]
    run_id, status = await db.fetchrow("SELECT id, status FROM zoningsync.runs")
    assert status == "failed"

    portal.behaviours.http_503_rate = 0.0
    portal.behaviours.latency_ms = 0
    resumed = await run(db_url, tmp_path, feed)
    assert resumed["id"] == run_id and resumed["resumed"] == 1
    assert resumed["fetched"] == PARCELS


async def test_a_run_alone_in_staging_leaves_it_truncated(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    assert await db.fetchval("SELECT pg_relation_size('zoningsync.staged_rows')") == 0


async def test_a_run_keeps_another_runs_staging_for_its_resume(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    waiting = await stale_run(db, "old/feed", staged_from=feed.full_id, age=timedelta(hours=1))
    kept = await count(db, "staged_rows")
    await run(db_url, tmp_path, feed, full=True)
    assert await count(db, "staged_rows") == kept
    assert await count(db, "staged_rows", f"run_id <> {waiting}") == 0


async def test_parcel_history_shows_every_rezoning_from_and_to_as_the_reader_sees_it(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    published = portal.county.publish(0.05, seed=2)
    await run(db_url, tmp_path, feed)
    events = {tuple(r) for r in await db.fetch(
        "SELECT source_key, old_code, new_code FROM zoningsync.zoning_changes")}
    await db.execute("SET ROLE zoningsync_reader")
    updates = {tuple(r) for r in await db.fetch(
        "SELECT source_key, zoning_before, zoning_after FROM zoningsync.parcel_history"
        " WHERE op = 'update' AND zoning_before IS DISTINCT FROM zoning_after")}
    retired = {r["source_key"] for r in await db.fetch(
        "SELECT source_key FROM zoningsync.parcel_history WHERE op = 'retire'"
        " AND zoning_after IS NULL AND geom_before IS NOT NULL")}
    assert events and updates == events
    assert retired == set(published["deleted_pins"])
