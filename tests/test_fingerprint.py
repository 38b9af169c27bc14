"""The settings fingerprint: rows of two field maps never mix, in a resume or an increment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from tests.test_sync import PARCELS, count, run, settings_for
from zoningsync.fingerprint import plan_fingerprint
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import sync_feeds

REMAPPED = 'parcel_id = "PIN"\nzoning_code = "CITY"\nzoning_desc = "ZONE_DESC"'
# What a planner sees of a feed's parcels, as one digest.
PARCELS_DIGEST = """
SELECT encode(sha256(string_agg(
           convert_to(format('%s|%s|%s|%s|%s|', source_key, parcel_id, zoning_code,
                             zoning_desc, attrs::text), 'UTF8') || ST_AsBinary(geom),
           ''::bytea ORDER BY source_key)), 'hex')
FROM zoningsync.parcels WHERE feed = $1
"""


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


async def cancel_after_pages(db_url: str, db: asyncpg.Connection, tmp_path: Path,
                             portal: RunningPortal, pages: int) -> None:
    """Start a sync of the feed on disk and cancel it once `pages` pages are staged."""
    feed = feed_config(tmp_path, portal.layer_url(0), page_size=100)
    portal.behaviours.latency_ms = 30
    syncing = asyncio.create_task(sync_feeds(settings_for(db_url, tmp_path), [feed],
                                             full=False, interactive=False))
    for _ in range(500):
        if await count(db, "staged_pages") >= pages:
            break
        await asyncio.sleep(0.02)
    syncing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await syncing
    portal.behaviours.latency_ms = 0


async def test_a_first_load_cancelled_then_rerun_remapped_equals_a_clean_remapped_run(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    await cancel_after_pages(db_url, db, tmp_path, portal, pages=3)
    cancelled = await db.fetchval("SELECT id FROM zoningsync.runs WHERE status = 'cancelled'")
    assert cancelled is not None and await count(db, "features") > 0

    remapped = feed_config(tmp_path, portal.layer_url(0), page_size=100, fields=REMAPPED)
    rerun = await run(db_url, tmp_path, remapped)
    clean = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0),
                                                    feed_id="clean", fields=REMAPPED))
    assert rerun["id"] != cancelled and rerun["mode"] == "full"
    assert await db.fetchval(PARCELS_DIGEST, remapped.full_id) == await db.fetchval(
        PARCELS_DIGEST, "test-county/clean")
    assert rerun["fetched"] == clean["fetched"] == PARCELS

    history = await count(db, "feature_history")
    again = await run(db_url, tmp_path, remapped)
    assert (again["inserted"], again["updated"], again["retired"]) == (0, 0, 0)
    assert await count(db, "feature_history") == history


async def test_a_run_interrupted_under_other_settings_is_closed_and_its_staging_dropped(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    await cancel_after_pages(db_url, db, tmp_path, portal, pages=2)
    [cancelled] = await db.fetch("SELECT id FROM zoningsync.runs")
    await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0), fields=REMAPPED))
    status, phase, error = await db.fetchrow(
        "SELECT status, phase, error FROM zoningsync.runs WHERE id = $1", cancelled["id"])
    assert (status, phase) == ("cancelled", "done")
    assert "settings" in error and "fresh full run" in error
    assert await count(db, "staged_rows") == 0


async def test_the_same_settings_resume_the_interrupted_run(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    await cancel_after_pages(db_url, db, tmp_path, portal, pages=2)
    [cancelled] = await db.fetch("SELECT id FROM zoningsync.runs")
    resumed = await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0),
                                                      page_size=100))
    assert resumed["id"] == cancelled["id"] and resumed["resumed"] == 1


async def test_settings_changed_since_the_last_success_make_the_next_run_full(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    portal.county.publish(0.02, seed=5)
    remapped = feed_config(tmp_path, portal.layer_url(0), fields=REMAPPED)
    changed = await run(db_url, tmp_path, remapped)
    assert changed["mode"] == "full"
    assert any("settings" in w for w in changed["warnings"])
    assert await count(db, "features", "NOT attrs ? 'ZONING'") == 0  # all read remapped
    portal.county.publish(0.02, seed=6)
    assert (await run(db_url, tmp_path, remapped))["mode"] == "incremental"


def test_the_fingerprint_ignores_how_pages_are_asked_for(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/arcgis/rest/services/X/FeatureServer/0"
    base = plan_fingerprint(feed_config(tmp_path, url))
    assert plan_fingerprint(feed_config(tmp_path, url, page_size=77, max_retries=1)) == base


@pytest.mark.parametrize("change", [
    {"fields": REMAPPED}, {"key": '"OBJECTID"'}, {"h3_resolution": 8},
    {"extra": 'where = "ACRES > 1"'},
])
def test_the_fingerprint_changes_with_every_setting_that_shapes_rows(
        tmp_path: Path, change: dict[str, Any]) -> None:
    url = "http://127.0.0.1:9/arcgis/rest/services/X/FeatureServer/0"
    base = plan_fingerprint(feed_config(tmp_path, url))
    assert plan_fingerprint(feed_config(tmp_path, url, **change)) != base
    assert plan_fingerprint(feed_config(tmp_path, url + "1")) != base
