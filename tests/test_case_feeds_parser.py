"""A feed read by a custom parser (`parser = "package.module:function"`), end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import source_feed, stored_cases, sync_one
from zoningsync.portal.county import County
from zoningsync.portal.pages import PAGE_SIZE
from zoningsync.portal.server import RunningPortal, run_portal

PARSER_SOURCE = """
[jurisdiction]
id = "parsed-county"

[[feeds]]
id = "cases"
kind = "cases"
url = "{base}/planning/cases"
parser = "tests.portal_case_parser:parse_case_list"
rate_limit = {{ requests_per_second = 50, burst = 50 }}
status_map = {{ "Approved by Council" = "approved", "Scheduled for Hearing" = "pending" }}
"""


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


async def test_a_custom_parser_feed_stores_the_cases_its_function_yields(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = source_feed(tmp_path, "parsed-county.toml",
                       PARSER_SOURCE.format(base=portal.base_url), "cases")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    cases = await stored_cases(db, feed.full_id)
    first_page = portal.cases.newest_first()[:PAGE_SIZE]
    assert set(cases) == {c.number for c in first_page}
    for truth in first_page:
        case = cases[truth.number]
        assert (case["title"], case["status"], case["applicant"]) == (
            truth.title, truth.status, truth.applicant)
        assert case["attrs"]["application"] == str(truth.serial + 1000)
    assert {cases[c.number]["status_class"] for c in first_page
            if c.status == "Approved by Council"} <= {"approved"}


async def test_an_unchanged_page_is_not_parsed_again_and_writes_nothing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = source_feed(tmp_path, "parsed-county.toml",
                       PARSER_SOURCE.format(base=portal.base_url), "cases")
    await sync_one(db_url, tmp_path, feed)
    again = await sync_one(db_url, tmp_path, feed)
    assert again["status"] == "succeeded", again.get("error")
    assert (again["inserted"], again["updated"], again["retired"]) == (0, 0, 0)
    assert len(await stored_cases(db, feed.full_id)) == PAGE_SIZE
