"""Case feeds end to end: the simulated portal's cases through a real run into PostGIS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import example_feed, stored_cases, sync_one
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(800, seed=5)) as running:
        yield running


async def test_an_html_case_list_stores_every_case_the_portal_publishes(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    cases = await stored_cases(db, feed.full_id)
    expected = {c["case_number"]: c for c in portal.app.cases.expected()}
    assert set(cases) == set(expected)
    for number, truth in expected.items():
        assert cases[number]["status"] == truth["status"]
        assert cases[number]["status_class"] == truth["status_class"]
        assert cases[number]["jurisdiction"] == "demo-county-cases"


async def test_an_unchanged_case_list_writes_nothing_the_second_time(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    await sync_one(db_url, tmp_path, feed)
    history = await db.fetchval("SELECT count(*) FROM zoningsync.case_history")
    again = await sync_one(db_url, tmp_path, feed)
    assert again["status"] == "succeeded", again.get("error")
    assert (again["inserted"], again["updated"], again["retired"]) == (0, 0, 0)
    assert again["fetched"] == again["unchanged"] > 0
    assert await db.fetchval("SELECT count(*) FROM zoningsync.case_history") == history


async def test_a_published_status_change_is_in_the_case_status_history(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    await sync_one(db_url, tmp_path, feed)
    before = await stored_cases(db, feed.full_id)
    moved = {number: status for number, status in portal.app.cases.publish()["changed"].items()
             if number in before and before[number]["status"] != status}
    second = await sync_one(db_url, tmp_path, feed)
    assert second["status"] == "succeeded", second.get("error")
    changes = await db.fetch(
        "SELECT case_number, new_value, run_id FROM zoningsync.case_status_history"
        " WHERE field = 'status'")
    assert moved
    assert {(r["case_number"], r["new_value"]) for r in changes} == set(moved.items())
    assert {r["run_id"] for r in changes} == {second["id"]}


async def test_a_case_list_whose_layout_changed_fails_and_retires_nothing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    await sync_one(db_url, tmp_path, feed)
    before = len(await stored_cases(db, feed.full_id))
    portal.behaviours.cases_layout_changed = True
    failed = await sync_one(db_url, tmp_path, feed)
    assert failed["status"] == "failed"
    assert "table#cases > tbody > tr" in failed["error"]
    assert len(await stored_cases(db, feed.full_id)) == before


async def test_a_prose_agenda_pdf_gives_its_cases_with_their_pages(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "agenda")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    cases = await stored_cases(db, feed.full_id)
    assert cases
    assert all(c["pages"] and c["document_sha256"] for c in cases.values())
    assert any(len(c["pages"]) == 2 for c in cases.values())


async def test_an_unchanged_pdf_is_answered_304_and_not_read_again(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "agenda")
    await sync_one(db_url, tmp_path, feed)
    changed_at = await db.fetchval("SELECT changed_at FROM zoningsync.documents")
    again = await sync_one(db_url, tmp_path, feed)
    assert (again["inserted"], again["updated"], again["retired"]) == (0, 0, 0)
    assert await db.fetchval("SELECT changed_at FROM zoningsync.documents") == changed_at
    assert await db.fetchval("SELECT count(*) FROM zoningsync.cases") > 0


async def test_every_bad_pdf_of_the_agenda_index_is_quarantined_with_its_reason(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "agenda-index")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    reasons = {r["reason"] for r in await db.fetch(
        "SELECT reason FROM zoningsync.quarantine WHERE feed = $1", feed.full_id)}
    assert {"no_text_layer", "encrypted", "malformed", "not_pdf"} <= reasons
    again = await sync_one(db_url, tmp_path, feed)
    assert again["status"] == "succeeded"
    assert await db.fetchval("SELECT count(*) FROM zoningsync.quarantine WHERE run_id = $1",
                             again["id"]) == 0


async def test_a_legistar_feed_reads_every_matter_then_only_the_modified(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "legistar")
    first = await sync_one(db_url, tmp_path, feed)
    assert first["status"] == "succeeded", first.get("error")
    assert first["mode"] == "full" and first["inserted"] > 0
    second = await sync_one(db_url, tmp_path, feed)
    assert second["status"] == "succeeded", second.get("error")
    assert second["mode"] == "incremental"
    assert (second["updated"], second["retired"]) == (0, 0)
