"""Agenda PDFs end to end: a ruled table across pages, and a real city's agenda."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.case_helpers import example_feed, source_feed, stored_cases, sync_one
from zoningsync.portal.agendas import schedule_cases
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

FIXTURES = Path(__file__).parent / "fixtures" / "cases"
AGENDA = "beverly_hills_planning_commission_agenda_2022-11-10.pdf"
# The browser's print header and footer on every page of the real agenda.
PRINT_HEADERS = (r"(?m)^(?:\d+ of \d+ \d{1,2}/\d{1,2}/\d{2}, \d{1,2}:\d{2} [AP]M"
                 r"|Planning Commission Regular Meeting https://\S+)\n")
# Where each case is (read off pdfplumber's text of each page; item 4 opens page 4).
AGENDA_PAGES = {"PL2200226": [3], "PL2200416": [4]}
AGENDA_SOURCE = """
[jurisdiction]
id = "beverly-hills-ca"
name = "City of Beverly Hills, CA"

[[feeds]]
id = "planning-commission"
kind = "cases"
type = "pdf"
url = "{url}"
schedule = "every 1d"
[feeds.pdf]
pattern = '''{pattern}'''
strip = '''{strip}'''
"""


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


@pytest.fixture
async def agenda_url() -> AsyncIterator[str]:
    """The real agenda, served as a city's web site serves it."""
    async def agenda(request: web.Request) -> web.FileResponse:
        return web.FileResponse(FIXTURES / AGENDA)

    app = web.Application()
    app.router.add_get(f"/AgendaCenter/{AGENDA}", agenda)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url(f"/AgendaCenter/{AGENDA}"))
    finally:
        await server.close()


async def test_a_table_across_pages_gives_every_case_of_the_schedule_with_its_columns(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = example_feed(tmp_path, portal, "hearings")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    cases = await stored_cases(db, feed.full_id)
    scheduled = schedule_cases(portal.cases)
    assert set(cases) == {c.number for c in scheduled}
    for truth in scheduled:
        case = cases[truth.number]
        assert (case["address"], case["case_type"], case["from_zoning"], case["to_zoning"],
                case["status"]) == (truth.address, truth.case_type, truth.from_zoning,
                                    truth.to_zoning, truth.status)
        assert truth.hearing is not None
        assert case["hearing_at"].date() == truth.hearing
    assert max(max(c["pages"]) for c in cases.values()) > 1  # the table does span pages


async def test_a_real_agenda_served_over_http_gives_every_case_it_holds(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, agenda_url: str) -> None:
    truth = json.loads((FIXTURES / "expected.json").read_text())["files"][AGENDA]
    source = AGENDA_SOURCE.format(url=agenda_url, pattern=truth["extraction"]["regex"],
                                  strip=PRINT_HEADERS)
    feed = source_feed(tmp_path, "beverly-hills-ca.toml", source, "planning-commission")
    summary = await sync_one(db_url, tmp_path, feed)
    assert summary["status"] == "succeeded", summary.get("error")
    cases = await stored_cases(db, feed.full_id)
    assert set(cases) == set(truth["case_ids"])
    for expected in truth["cases"]:
        case = cases[expected["case_number"]]
        assert case["address"] == expected["address"]
        assert case["jurisdiction"] == "beverly-hills-ca"
        for group in ("item", "request", "description"):
            assert case["attrs"][group] == expected[group], group
        assert list(case["pages"]) == AGENDA_PAGES[expected["case_number"]]
        assert case["document_url"] == agenda_url
        assert case["document_sha256"] == truth["source"]["sha256"]
    assert await db.fetchval("SELECT count(*) FROM zoningsync.quarantine") == 0
