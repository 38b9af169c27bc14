"""`zoningsync quarantine show|retry|resolve`: triage of the records runs rejected."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from tests.test_pause import zoningsync
from tests.test_rollback import sync
from zoningsync.config import FeedConfig
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

RAW = {"attributes": {"PIN": "0001", "ZONING": "R-4"}, "geometry": None}


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(600, seed=7)) as running:
        yield running


async def quarantined(db_url: str, db: asyncpg.Connection, feed: FeedConfig, tmp_path: Path
                      ) -> int:
    """A first load, and a record of its run quarantined: the record's id."""
    summary = await sync(db_url, tmp_path, feed)
    return int(await db.fetchval(
        "INSERT INTO zoningsync.quarantine (feed, run_id, source_key, reason, detail, raw)"
        " VALUES ('test-county/parcels', $1, '0001', 'null_geometry', 'no geometry', $2)"
        " RETURNING id", summary["id"], RAW))


async def test_show_prints_the_raw_record_and_the_reason(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    record = await quarantined(db_url, db, feed_config(tmp_path, portal.layer_url(0)), tmp_path)
    code, out, err = await zoningsync(db_url, "quarantine", "show", str(record), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["reason"], shown["raw"], shown["source_key"]) == ("null_geometry", RAW, "0001")


async def test_resolve_records_the_decision_and_hides_the_record_from_list(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    record = await quarantined(db_url, db, feed_config(tmp_path, portal.layer_url(0)), tmp_path)
    code, _, err = await zoningsync(db_url, "quarantine", "resolve", str(record), "--note",
                                    "parcel merged upstream")
    assert code == 0, err
    _, out, _ = await zoningsync(db_url, "quarantine", "list", "--json")
    assert record not in [r["id"] for r in json.loads(out)]
    _, out, _ = await zoningsync(db_url, "quarantine", "list", "--all", "--json")
    assert record in [r["id"] for r in json.loads(out)]
    _, out, _ = await zoningsync(db_url, "audit", "--json")
    [action] = json.loads(out)
    assert (action["action"], action["target"], action["reason"]) == (
        "quarantine_resolve", str(record), "parcel merged upstream")
    code, _, _ = await zoningsync(db_url, "quarantine", "resolve", str(record), "--note", "x")
    assert code == 1


async def test_list_pages_with_limit(db_url: str, db: asyncpg.Connection, tmp_path: Path,
                                     portal: RunningPortal) -> None:
    record = await quarantined(db_url, db, feed_config(tmp_path, portal.layer_url(0)), tmp_path)
    await db.execute("INSERT INTO zoningsync.quarantine (feed, run_id, reason)"
                     " SELECT feed, run_id, reason FROM zoningsync.quarantine WHERE id = $1",
                     record)
    _, out, _ = await zoningsync(db_url, "quarantine", "list", "--limit", "1", "--json")
    assert [r["id"] for r in json.loads(out)] == [record]


async def test_retry_makes_the_next_run_a_full_read_once(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await quarantined(db_url, db, feed, tmp_path)
    assert (await sync(db_url, tmp_path, feed))["mode"] == "incremental"
    code, out, err = await zoningsync(db_url, "quarantine", "retry", "--json")
    assert code == 0, err
    assert json.loads(out)["feeds"] == ["test-county/parcels"]
    assert (await sync(db_url, tmp_path, feed))["mode"] == "full"
    assert (await sync(db_url, tmp_path, feed))["mode"] == "incremental"
