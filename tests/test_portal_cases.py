"""The simulated county's rezoning cases: the model, its pages, its PDFs and its Legistar API."""

from __future__ import annotations

import io
import re
import tomllib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from itertools import chain, pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from urllib.robotparser import RobotFileParser

import aiohttp
import numpy as np
import pdfplumber
import pytest
from bs4 import BeautifulSoup
from multidict import CIMultiDict
from pdfminer.pdfdocument import PDFPasswordIncorrect
from pdfminer.psparser import PSEOF
from pdfplumber.utils.exceptions import PdfminerException

from zoningsync.portal import Cases
from zoningsync.portal.agendas import (
    COUNCIL_USER_PASSWORD,
    SCHEDULE_COLUMNS,
    agenda_cases,
    schedule_cases,
)
from zoningsync.portal.cases import (
    APPROVED,
    CONTINUED,
    DENIED,
    FILED,
    SCHEDULED,
    STATUSES,
    UNDER_REVIEW,
    WITHDRAWN,
    Case,
)
from zoningsync.portal.county import County
from zoningsync.portal.odata import ODataError, parse_filter
from zoningsync.portal.server import RunningPortal, run_portal

EXAMPLE = Path(__file__).parent.parent / "sources" / "examples" / "demo-cases.toml.example"


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(1000, seed=3)) as running:
        yield running


async def fetch(http: aiohttp.ClientSession, url: str, **kwargs: Any
                ) -> tuple[int, CIMultiDict[str], bytes]:
    async with http.get(url, **kwargs) as answer:
        return answer.status, CIMultiDict(answer.headers), await answer.read()


async def fetch_ok(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> bytes:
    status, _, body = await fetch(http, url, **kwargs)
    assert status == 200, (url, body[:200])
    return body


def soup(body: bytes, charset: str = "windows-1252") -> BeautifulSoup:
    return BeautifulSoup(body.decode(charset), "html.parser")


def pdf_text(body: bytes, **kwargs: Any) -> list[str]:
    with pdfplumber.open(io.BytesIO(body), **kwargs) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def example_feeds() -> dict[str, dict[str, Any]]:
    return {feed["id"]: feed for feed in tomllib.loads(EXAMPLE.read_text())["feeds"]}


# -- the case model ----------------------------------------------------------------------


def test_cases_are_a_pure_function_of_county_and_seed() -> None:
    first, again = Cases(County(800, seed=2), seed=5), Cases(County(800, seed=2), seed=5)
    other = Cases(County(800, seed=2), seed=6)
    assert first.expected() == again.expected()
    assert first.expected() != other.expected()
    assert len(first.expected()) == 60


def test_case_pins_are_the_countys_except_the_unknown_ones() -> None:
    county = County(800, seed=2)
    pins = set(county.parcels.columns["PIN"].serve(np.arange(county.parcels.size)))
    cases = Cases(county).expected()
    for case in cases:
        unknown = set(case["unknown_parcel_ids"])
        assert unknown <= set(case["parcel_ids"])
        assert set(case["parcel_ids"]) - unknown <= pins
        assert not unknown & pins
    assert any(not case["parcel_ids"] for case in cases)
    assert any(case["unknown_parcel_ids"] for case in cases)


def test_every_case_address_is_a_parcel_address() -> None:
    county = County(800, seed=2)
    addresses = {a.strip() for a in county.parcels.columns["SITE_ADDRESS"].serve(
        np.arange(county.parcels.size))}
    assert all(case["address"] in addresses for case in Cases(county).expected())


def test_case_dates_agree_with_statuses() -> None:
    cases = Cases(County(800, seed=2))
    for case in cases.expected():
        if case["status"] in (SCHEDULED, CONTINUED):
            assert case["hearing_at"] == cases.next_meeting and case["decided_at"] is None
        if case["status"] in (APPROVED, DENIED):
            assert case["filed_at"] < case["hearing_at"] <= case["decided_at"] <= cases.today
        if case["status"] in (FILED, UNDER_REVIEW):
            assert case["hearing_at"] is None and case["decided_at"] is None
    assert {case["status"] for case in cases.expected()} == set(STATUSES)


def test_publish_advances_some_cases_files_new_ones_and_withdraws_one() -> None:
    cases = Cases(County(800, seed=2))
    before = {case["case_number"]: case for case in cases.expected()}
    summary = cases.publish()
    after = {case["case_number"]: case for case in cases.expected()}
    assert len(summary["filed"]) in (2, 3) and len(summary["withdrawn"]) == 1
    assert set(after) - set(before) == set(summary["filed"])
    assert after[summary["withdrawn"][0]]["status"] == WITHDRAWN
    moved = {n for n in before if before[n]["status"] != after[n]["status"]}
    assert moved and moved <= set(summary["changed"])
    for number, case in before.items():
        touched = number in summary["changed"]
        assert (after[number]["modified"] > case["modified"]) is touched


def test_publish_is_deterministic() -> None:
    first, again = Cases(County(800, seed=2)), Cases(County(800, seed=2))
    assert [first.publish() for _ in range(3)] == [again.publish() for _ in range(3)]
    assert first.expected() == again.expected()


# -- the case list and detail pages ------------------------------------------------------


async def all_list_pages(http: aiohttp.ClientSession, portal: RunningPortal
                         ) -> list[BeautifulSoup]:
    url: str | None = portal.cases_url
    pages = []
    while url is not None:
        page = soup(await fetch_ok(http, url))
        pages.append(page)
        following = page.select_one("a[rel=next]")
        url = urljoin(url, str(following["href"])) if following else None
    return pages


async def test_case_list_paginates_twenty_a_page_through_rel_next(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    pages = await all_list_pages(http, portal)
    numbers = [[a.get_text() for a in page.select("table#cases td a.case-link")]
               for page in pages]
    assert [len(n) for n in numbers] == [20, 20, 20]
    assert sorted(chain.from_iterable(numbers)) == sorted(c.number for c in portal.cases.cases)


async def test_case_list_links_are_relative(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    page = soup(await fetch_ok(http, portal.cases_url))
    link = page.select_one("a.case-link")
    assert link is not None and not str(link["href"]).startswith(("/", "http"))
    detail = urljoin(portal.cases_url, str(link["href"]))
    assert detail == f"{portal.cases_url}/{link.get_text()}"
    assert (await fetch(http, detail))[0] == 200


async def test_case_list_is_windows_1252_with_an_accented_applicant_on_one_page(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    bodies = []
    for page in (1, 2, 3):
        _, headers, body = await fetch(http, portal.cases_url, params={"page": page})
        assert headers["Content-Type"] == "text/html; charset=windows-1252"
        bodies.append(body)
    accented = [b for b in bodies if "René Dupré".encode("cp1252") in b]
    assert len(accented) == 1
    with pytest.raises(UnicodeDecodeError):
        accented[0].decode("utf-8")


async def test_case_list_has_nbsp_cells_a_repeated_header_and_one_colspan(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, portal.cases_url)
    page = soup(body)
    body_rows = page.select("table#cases > tbody > tr")
    assert b"<td>&nbsp;</td>" in body
    assert [len(row.select("th")) > 0 for row in body_rows].count(True) == 1
    assert len(page.select("table#cases td[colspan]")) == 1
    assert len(body_rows) == 21


async def test_meeting_date_span_names_the_next_meeting(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    page = soup(await fetch_ok(http, portal.cases_url))
    meeting = page.select_one("span#meeting-date")
    assert meeting is not None
    assert meeting.get_text() == portal.cases.next_meeting.strftime("%m/%d/%Y")


async def test_detail_page_lists_every_field_and_links_its_agendas(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    case = next(c for c in portal.cases.cases if c.status == SCHEDULED and c.parcel_ids)
    url = f"{portal.cases_url}/{case.number}"
    page = soup(await fetch_ok(http, url), "utf-8")
    fields = {dt.get_text(): dd.get_text() for dt, dd in zip(
        page.select("dl.case-details dt"), page.select("dl.case-details dd"), strict=True)}
    assert fields["Applicant"] == case.applicant
    assert fields["PINs"] == ", ".join(case.parcel_ids)
    assert fields["Acreage"] == f"{case.acreage:.2f}"
    assert (fields["Current Zoning"], fields["Requested Zoning"]) == (
        case.from_zoning, case.to_zoning)
    pdfs = [urljoin(url, str(a["href"])) for a in page.select("a[href$='.pdf']")]
    assert pdfs == [f"{portal.agendas_url}/{name}" for name in case.documents]
    for pdf in pdfs:
        assert (await fetch_ok(http, pdf)).startswith(b"%PDF-")


async def test_an_unknown_case_or_page_is_404(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    assert (await fetch(http, f"{portal.cases_url}/Z-1999-001"))[0] == 404
    assert (await fetch(http, portal.cases_url, params={"page": 99}))[0] == 404


async def test_agenda_index_links_every_document(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    page = soup(await fetch_ok(http, portal.agendas_url), "utf-8")
    names = [str(a["href"]).rsplit("/", 1)[1] for a in page.select("a[href$='.pdf']")]
    assert sorted(names) == sorted(["planning-commission-agenda.pdf", "hearing-schedule.pdf",
                                    "council-agenda.pdf", "scanned-agenda.pdf",
                                    "commission-minutes.pdf", "missing.pdf"])


async def test_layout_changed_list_has_no_rows_where_the_selector_looks(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    portal.behaviours.cases_layout_changed = True
    page = soup(await fetch_ok(http, portal.cases_url))
    assert page.select(example_feeds()["cases-html"]["html"]["rows"]) == []
    assert page.select("[data-case]")


# -- conditional GET -----------------------------------------------------------------------


async def test_unchanged_page_answers_304_to_its_etag(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    for url in (portal.cases_url, f"{portal.agendas_url}/hearing-schedule.pdf",
                f"{portal.base_url}/robots.txt"):
        _, headers, _ = await fetch(http, url)
        status, again, body = await fetch(http, url, headers={"If-None-Match": headers["ETag"]})
        assert (status, body, again["ETag"]) == (304, b"", headers["ETag"])


async def test_unchanged_page_answers_304_to_if_modified_since(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    _, headers, _ = await fetch(http, portal.cases_url)
    modified = headers["Last-Modified"]
    assert (await fetch(http, portal.cases_url, headers={"If-Modified-Since": modified}))[0] \
        == 304
    earlier = format_datetime(portal.cases.clock - timedelta(days=1), usegmt=True)
    assert (await fetch(http, portal.cases_url, headers={"If-Modified-Since": earlier}))[0] \
        == 200


async def test_a_stale_etag_gets_the_page(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    status, _, body = await fetch(http, portal.cases_url, headers={"If-None-Match": '"old"'})
    assert status == 200 and body


async def test_publish_changes_the_etag_only_of_what_changed(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    untouched = portal.cases.cases[0]
    detail = f"{portal.cases_url}/{untouched.number}"
    _, list_before, _ = await fetch(http, portal.cases_url)
    _, detail_before, _ = await fetch(http, detail)
    async with http.post(f"{portal.base_url}/_portal/cases/publish") as answer:
        summary = await answer.json()
    assert untouched.number not in summary["changed"]
    _, list_after, _ = await fetch(http, portal.cases_url)
    _, detail_after, _ = await fetch(http, detail)
    assert list_after["ETag"] != list_before["ETag"]
    assert list_after["Last-Modified"] != list_before["Last-Modified"]
    assert (detail_after["ETag"], detail_after["Last-Modified"]) == (
        detail_before["ETag"], detail_before["Last-Modified"])


async def test_robots_allows_planning_and_disallows_private(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    robots = RobotFileParser()
    robots.parse((await fetch_ok(http, f"{portal.base_url}/robots.txt")).decode().splitlines())
    assert robots.can_fetch("zoningsync", portal.cases_url)
    assert robots.can_fetch("zoningsync", f"{portal.agendas_url}/hearing-schedule.pdf")
    assert not robots.can_fetch("zoningsync", f"{portal.base_url}/private/staff")


# -- agenda PDFs ---------------------------------------------------------------------------


async def test_prose_agenda_gives_every_scheduled_case_through_the_example_pattern(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, f"{portal.agendas_url}/planning-commission-agenda.pdf")
    text = "\n".join(pdf_text(body))
    pattern = re.compile(example_feeds()["agenda"]["pdf"]["pattern"])
    found = {m["case_number"]: m for m in pattern.finditer(text)}
    listed = agenda_cases(portal.cases)
    assert sorted(found) == sorted(c.number for c in listed)
    for case in listed:
        match = found[case.number]
        assert (match["address"], match["title"], match["status"]) == (
            case.address, case.title, case.status)


async def test_prose_agenda_has_a_case_running_across_a_page_break(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, f"{portal.agendas_url}/planning-commission-agenda.pdf")
    pages = pdf_text(body)
    assert len(pages) > 1
    def straddles(case: Case, here: str, after: str) -> bool:
        opening, closing = f"Case {case.number}", f"Status: {case.status}."
        return opening in here and closing not in here.split(opening)[1] and closing in after

    assert any(straddles(case, here, after) for case in agenda_cases(portal.cases)
               for here, after in pairwise(pages))


async def test_hearing_schedule_is_a_table_with_its_header_on_every_page(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, f"{portal.agendas_url}/hearing-schedule.pdf")
    rows: list[list[str | None]] = []
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        assert len(pdf.pages) > 1
        for page in pdf.pages:
            (table,) = page.extract_tables()
            assert tuple(table[0]) == SCHEDULE_COLUMNS
            rows.extend(table[1:])
    expected = [[c.number, c.address, c.case_type, c.from_zoning, c.to_zoning,
                 c.hearing.strftime("%B %d, %Y") if c.hearing else "", c.status]
                for c in schedule_cases(portal.cases)]
    assert rows == expected


async def test_scanned_agenda_has_an_image_and_no_text(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, f"{portal.agendas_url}/scanned-agenda.pdf")
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        assert [len(page.images) for page in pdf.pages] == [1]
        assert [page.extract_text() for page in pdf.pages] == [""]
        assert pdf.pages[0].chars == []


async def test_council_agenda_opens_only_with_its_password(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, f"{portal.agendas_url}/council-agenda.pdf")
    with pytest.raises(PdfminerException) as refused:
        pdf_text(body)
    assert isinstance(refused.value.args[0], PDFPasswordIncorrect)
    text = "\n".join(pdf_text(body, password=COUNCIL_USER_PASSWORD))
    decided = [c for c in portal.cases.cases if c.status in (APPROVED, DENIED)]
    assert decided and all(f"Case {c.number}" in text for c in decided)


async def test_minutes_are_cut_off_and_do_not_open(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    body = await fetch_ok(http, f"{portal.agendas_url}/commission-minutes.pdf")
    assert body.startswith(b"%PDF-") and b"%%EOF" not in body
    with pytest.raises(PdfminerException) as refused:
        pdf_text(body)
    assert isinstance(refused.value.args[0], PSEOF)


async def test_missing_pdf_is_an_html_page_answered_with_200(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    status, headers, body = await fetch(http, f"{portal.agendas_url}/missing.pdf")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>") and not body.startswith(b"%PDF")


async def test_a_pdf_is_the_same_bytes_until_a_publish_changes_its_cases(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    url = f"{portal.agendas_url}/planning-commission-agenda.pdf"
    first, again = await fetch_ok(http, url), await fetch_ok(http, url)
    assert first == again
    await http.post(f"{portal.base_url}/_portal/cases/publish")
    assert await fetch_ok(http, url) != first


async def test_slow_pdf_mode_still_delivers_the_whole_pdf(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    url = f"{portal.agendas_url}/hearing-schedule.pdf"
    quick = await fetch_ok(http, url)
    portal.behaviours.update({"slow_pdf_ms": "80"})
    status, headers, slow = await fetch(http, url)
    assert (status, slow) == (200, quick)
    assert headers["Content-Length"] == str(len(quick))


# -- Legistar ------------------------------------------------------------------------------


async def matters(http: aiohttp.ClientSession, portal: RunningPortal, **params: Any) -> Any:
    async with http.get(f"{portal.legistar_url}/wake/matters", params=params) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def test_legistar_pages_with_top_and_skip(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    everything = await matters(http, portal)
    paged: list[Any] = []
    while page := await matters(http, portal, **{"$top": "25", "$skip": str(len(paged))}):
        paged.extend(page)
    assert paged == everything
    assert len(everything) == len(portal.cases.cases) + len(portal.app.legistar.others)


async def test_legistar_caps_top_at_1000() -> None:
    county = County(3000, seed=1)
    async with run_portal(county, cases=Cases(county, count=1100)) as big, \
            aiohttp.ClientSession() as http:
        assert len(await matters(http, big, **{"$top": "5000"})) == 1000


async def test_legistar_matters_are_shaped_like_the_real_api(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    case = next(c for c in portal.cases.cases if c.status == APPROVED)
    (matter,) = await matters(http, portal, **{"$filter": f"MatterId eq {case.matter_id}"})
    assert matter["MatterFile"] == case.number and matter["MatterTitle"] == case.title
    assert matter["MatterTypeName"] == "Ordinance"
    assert matter["MatterStatusName"] == APPROVED
    assert matter["MatterIntroDate"] == f"{case.filed.isoformat()}T00:00:00"
    assert matter["MatterPassedDate"] == f"{case.decided.isoformat()}T00:00:00"  # type: ignore[union-attr]
    assert re.fullmatch(r"[0-9A-F-]{36}", matter["MatterGuid"])
    assert datetime.fromisoformat(matter["MatterLastModifiedUtc"]).tzinfo is None
    for name in ("MatterRowVersion", "MatterBodyName", "MatterAgendaDate",
                 "MatterEnactmentNumber", "MatterTypeId", "MatterStatusId"):
        assert name in matter


async def test_legistar_filters_like_python_legistar_scraper(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    since = "2024-08-01T00:00:00"
    answer = await matters(http, portal, **{
        "$filter": f"(MatterTypeName eq 'Ordinance' or MatterTypeName eq 'Resolution') and "
                   f"(MatterLastModifiedUtc gt datetime'{since}' or "
                   f"MatterIntroDate gt datetime'{since}')",
        "$orderby": "MatterLastModifiedUtc"})
    everything = await matters(http, portal)
    wanted = [m for m in everything if m["MatterTypeName"] in ("Ordinance", "Resolution")
              and (m["MatterLastModifiedUtc"] > since or m["MatterIntroDate"] > since)]
    assert sorted(m["MatterId"] for m in answer) == sorted(m["MatterId"] for m in wanted)
    stamps = [m["MatterLastModifiedUtc"] for m in answer]
    assert stamps == sorted(stamps) and 0 < len(answer) < len(everything)


async def test_legistar_modified_moves_when_a_publish_changes_a_matter(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    before = {m["MatterId"]: m for m in await matters(http, portal)}
    summary = portal.cases.publish()
    after = {m["MatterId"]: m for m in await matters(http, portal)}
    changed = {c.matter_id for c in portal.cases.cases if c.number in summary["changed"]}
    for matter_id, matter in before.items():
        moved = after[matter_id]["MatterLastModifiedUtc"] != matter["MatterLastModifiedUtc"]
        assert moved is (matter_id in changed)
        assert (after[matter_id]["MatterRowVersion"] != matter["MatterRowVersion"]) is moved
    since = portal.cases.clock.replace(tzinfo=None).isoformat()
    fresh = await matters(http, portal, **{
        "$filter": f"MatterLastModifiedUtc ge datetime'{since}'"})
    assert {m["MatterId"] for m in fresh} == changed


async def test_legistar_attachments_link_the_portals_pdfs(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    case = next(c for c in portal.cases.cases if c.status == SCHEDULED)
    async with http.get(f"{portal.legistar_url}/wake/matters/{case.matter_id}/attachments"
                        ) as answer:
        attachments = await answer.json()
    assert [a["MatterAttachmentFileName"] for a in attachments] == list(case.documents)
    for attachment in attachments:
        assert attachment["MatterAttachmentHyperlink"].startswith(portal.agendas_url)
        assert (await fetch_ok(http, attachment["MatterAttachmentHyperlink"])).startswith(
            b"%PDF-")


async def test_legistar_refuses_a_bad_filter_with_a_message(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    for bad in ("MatterNope eq 1", "MatterId eq", "MatterId eq 1)", "MatterId gt datetime'x'"):
        async with http.get(f"{portal.legistar_url}/wake/matters",
                            params={"$filter": bad}) as answer:
            assert answer.status == 400
            assert "Message" in await answer.json()


async def test_legistar_unknown_client_is_404(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{portal.legistar_url}/pittsburgh/matters") as answer:
        assert answer.status == 404


ROW = {"MatterId": 7, "MatterTypeName": "Ordinance", "MatterTitle": "Rezoning of 1 Oak St",
       "MatterLastModifiedUtc": "2024-03-05T10:00:00.5", "MatterPassedDate": None}


@pytest.mark.parametrize(("text", "keeps"), [
    ("MatterId eq 7", True),
    ("MatterId ne 7", False),
    ("MatterId gt 6 and MatterId lt 8", True),
    ("MatterTypeName eq 'Ordinance'", True),
    ("MatterTypeName eq 'Resolution' or MatterId ge 7", True),
    ("not (MatterTypeName eq 'Ordinance')", False),
    ("MatterLastModifiedUtc gt datetime'2024-03-05T00:00:00'", True),
    ("MatterLastModifiedUtc gt datetime'2024-03-05T10:00:00.5'", False),
    ("MatterLastModifiedUtc le datetime'2024-03-05T11:00:00Z'", True),
    ("MatterPassedDate gt datetime'2024-01-01T00:00:00'", False),
    ("MatterPassedDate eq null", True),
    ("substringof('Oak', MatterTitle)", True),
    ("substringof('Oak', MatterTitle) eq false", False),
    ("startswith(MatterTitle, 'Rezoning')", True),
    ("((MatterId eq 1) or (MatterId eq 7)) and MatterTypeName ne 'Contract'", True),
    ("MatterTitle eq 'It''s'", False),
])
def test_odata_filter(text: str, keeps: bool) -> None:
    assert parse_filter(text, list(ROW))(ROW) is keeps


@pytest.mark.parametrize("text", ["MatterId", "MatterId eq 1 and", "(MatterId eq 1",
                                  "MatterId eq 1 MatterId", "Other eq 1", "MatterId ~ 1"])
def test_odata_filter_refuses(text: str) -> None:
    with pytest.raises(ODataError):
        parse_filter(text, list(ROW))


# -- admin routes and the examples ---------------------------------------------------------


async def test_admin_routes_publish_cases_and_answer_the_ground_truth(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{portal.base_url}/_portal/cases/publish") as answer:
        assert (await answer.json())["version"] == 1
    async with http.get(f"{portal.base_url}/_portal/cases") as answer:
        truth = await answer.json()
    assert [c["case_number"] for c in truth] == [c.number for c in portal.cases.cases]
    assert truth[0]["filed_at"] == portal.cases.cases[0].filed.isoformat()


async def test_county_publish_leaves_the_cases_alone(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    before = portal.cases.expected()
    async with http.post(f"{portal.base_url}/_portal/publish", json={"fraction": 0.02}):
        pass
    assert portal.cases.expected() == before and portal.county.version == 1


async def test_example_html_feed_reads_every_case_of_the_portal(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    feed = example_feeds()["cases-html"]
    seen: dict[str, dict[str, str]] = {}
    for page in await all_list_pages(http, portal):
        for row in page.select(feed["html"]["rows"]):
            number = row.select_one(feed["fields"]["case_number"])
            if number is None:
                continue
            pins = row.select_one(feed["fields"]["parcel_ids"]["selector"])
            location = row.select_one(feed["fields"]["address"]["selector"])
            assert pins is not None and location is not None
            address = re.search(feed["fields"]["address"]["pattern"], location.get_text())
            assert address is not None
            seen[number.get_text()] = {
                "pins": pins.get_text().strip("\xa0"), "address": address["address"]}
    truth = {c["case_number"]: c for c in portal.cases.expected()}
    assert set(seen) == set(truth)
    split = feed["fields"]["parcel_ids"]["split"]
    for number, case in truth.items():
        assert [p for p in re.split(split, seen[number]["pins"]) if p] == case["parcel_ids"]
        assert seen[number]["address"] == case["address"]
        assert all(re.fullmatch(feed["parcel_id_pattern"], pin) for pin in case["parcel_ids"])


def test_example_feeds_use_only_the_contract_keys() -> None:
    contract = {"id", "kind", "type", "url", "schedule", "rate_limit", "parcel_id_pattern",
                "status_map", "html", "pdf", "legistar", "filter", "fields"}
    sections = {"html": {"rows", "next", "max_pages", "detail", "documents", "date_format"},
                "pdf": {"documents", "pattern", "table"},
                "legistar": {"client", "matter_types", "since_days"}}
    for feed in example_feeds().values():
        assert set(feed) <= contract, feed["id"]
        assert feed["kind"] == "cases" and feed["type"] in ("html", "pdf", "legistar")
        for name, keys in sections.items():
            assert set(feed.get(name, {})) <= keys, (feed["id"], name)

