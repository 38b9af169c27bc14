"""An HTML case list end to end: its pages, the page cap and the detail pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import example_feed, source_feed, stored_cases, sync_one
from zoningsync.config import FeedConfig
from zoningsync.portal.county import County
from zoningsync.portal.pages import PAGE_SIZE
from zoningsync.portal.server import RunningPortal, run_portal

DETAIL_SOURCE = """
[jurisdiction]
id = "detail-county"
name = "Cases whose parties are on their detail pages"

[[feeds]]
id = "cases"
kind = "cases"
type = "html"
url = "{base}/planning/cases"
schedule = "every 1h"
rate_limit = {{ requests_per_second = 50, burst = 50 }}
parcel_id_pattern = '\\d{{10}}'
[feeds.html]
rows = "table#cases > tbody > tr"
next = "a[rel=next]"
detail = "td a.case-link"
date_format = "%m/%d/%Y"
[feeds.fields]
case_number = "td:nth-of-type(1) a"
status = {{ column = "Status" }}
applicant = {{ column = "Applicant" }}
parcel_ids = {{ column = "PINs", split = '[,;\\s]+' }}
acreage = {{ column = "Acreage" }}
decided_at = {{ column = "Decision Date" }}
"""


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


def capped(feed: FeedConfig, max_pages: int) -> FeedConfig:
    """The feed with another page cap (the options are frozen: rebuilt, not mutated)."""
    from dataclasses import replace

    assert feed.cases is not None and feed.cases.html is not None
    html = replace(feed.cases.html, max_pages=max_pages)
    return replace(feed, cases=replace(feed.cases, html=html))


async def test_every_page_of_the_case_list_is_read(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    expected = portal.cases.expected()
    assert len(expected) > 2 * PAGE_SIZE  # three pages at least
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    assert set(await stored_cases(db, feed.full_id)) == {c["case_number"] for c in expected}
    assert summary["fetched"] == summary["inserted"] == len(expected)
    pages = await db.fetchval("SELECT count(*) FROM zoningsync.documents"
                              " WHERE url LIKE '%/planning/cases%' AND url NOT LIKE '%/Z-%'")
    assert pages == -(-len(expected) // PAGE_SIZE)


async def test_a_page_cap_below_the_list_retires_nothing_and_says_so(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "cases-html")
    await sync_one(db_url, tmp_path, feed)
    everything = set(await stored_cases(db, feed.full_id))
    summary = await sync_one(db_url, tmp_path, capped(feed, 2))
    assert summary["status"] == "succeeded", summary.get("error")
    assert summary["retired"] == 0
    assert set(await stored_cases(db, feed.full_id)) == everything
    warnings = await db.fetchval("SELECT warnings FROM zoningsync.runs WHERE id = $1",
                                 summary["id"])
    assert any("not complete" in w and "max_pages" in w for w in warnings), warnings


async def test_detail_pages_give_their_rows_the_values_the_list_lacks(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = source_feed(tmp_path, "detail-county.toml",
                       DETAIL_SOURCE.format(base=portal.base_url), "cases")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    cases = await stored_cases(db, feed.full_id)
    expected = portal.cases.expected()
    assert set(cases) == {c["case_number"] for c in expected}
    for truth in expected:
        case = cases[truth["case_number"]]
        assert case["applicant"] == truth["applicant"]
        assert list(case["parcel_ids"]) == truth["parcel_ids"]
        assert case["acreage"] == pytest.approx(truth["acreage"])  # only on the detail page
        assert case["detail_url"].endswith(truth["detail_url"])


async def test_a_detail_page_edited_under_an_unchanged_list_is_read_again(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = source_feed(tmp_path, "detail-county.toml",
                       DETAIL_SOURCE.format(base=portal.base_url), "cases")
    await sync_one(db_url, tmp_path, feed)
    # Staff correct a decision date on the case's own page; the list shows no dates.
    edited = next(c for c in portal.cases.cases if c.decided is not None)
    assert edited.decided is not None
    edited.decided += timedelta(days=1)
    portal.cases.version += 1  # the portal builds its pages again; unchanged ones keep ETags
    again = await sync_one(db_url, tmp_path, feed)
    assert again["status"] == "succeeded", again.get("error")
    assert (again["inserted"], again["updated"], again["retired"]) == (0, 1, 0)
    case = (await stored_cases(db, feed.full_id))[edited.number]
    assert case["decided_at"].date() == edited.decided
