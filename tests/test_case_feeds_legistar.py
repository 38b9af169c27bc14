"""A Legistar feed end to end: matters read in `$skip` pages, then only those modified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import example_feed, stored_cases, sync_one
from zoningsync.config import FeedConfig
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

PAGE_SIZE = 7


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


def paged(tmp_path: Path, portal: RunningPortal) -> FeedConfig:
    """The example Legistar feed asking for `PAGE_SIZE` matters a page."""
    feed = example_feed(tmp_path, portal, "legistar")
    assert feed.cases is not None and feed.cases.legistar is not None
    legistar = replace(feed.cases.legistar, page_size=PAGE_SIZE)
    return replace(feed, cases=replace(feed.cases, legistar=legistar))


async def test_a_legistar_feed_reads_every_page_of_matters(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = paged(tmp_path, portal)
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    expected = portal.cases.expected()
    cases = await stored_cases(db, feed.full_id)
    assert set(cases) == {c["case_number"] for c in expected}
    assert {n: c["status"] for n, c in cases.items()} == {
        c["case_number"]: c["status"] for c in expected}
    assert portal.app.stats.requests["legistar"] > len(expected) // PAGE_SIZE


async def test_after_a_publish_an_incremental_read_brings_only_the_modified_matters(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = paged(tmp_path, portal)
    first = await sync_one(db_url, tmp_path, feed)
    full_requests = portal.app.stats.requests["legistar"]
    published = portal.cases.publish()
    portal.app.stats.reset()
    second = await sync_one(db_url, tmp_path, feed)
    assert second["status"] == "succeeded", second.get("error")
    assert second["mode"] == "incremental"
    assert second["retired"] == 0
    assert second["inserted"] == len(published["filed"])
    assert second["updated"] == len(published["changed"]) - len(published["filed"])
    assert portal.app.stats.requests["legistar"] < full_requests
    cases = await stored_cases(db, feed.full_id)
    assert {n: c["status"] for n, c in cases.items()} == {
        c["case_number"]: c["status"] for c in portal.cases.expected()}
    moved = await db.fetch("SELECT case_number, new_value, run_id FROM "
                           "zoningsync.case_status_history WHERE field = 'status'")
    assert {r["run_id"] for r in moved} == {second["id"]} != {first["id"]}
