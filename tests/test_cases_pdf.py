"""Agenda PDFs → cases: the real Beverly Hills agenda, generated agendas, every quarantine."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from PIL import Image

from zoningsync.cases.model import DocumentQuarantine, StatusClass
from zoningsync.cases.options import CaseOptions, parse_case_options
from zoningsync.cases.pdf import read_pdf, read_pdf_bounded, read_pdf_in_child

FIXTURES = Path(__file__).parent / "fixtures" / "cases"
AGENDA = FIXTURES / "beverly_hills_planning_commission_agenda_2022-11-10.pdf"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["files"][AGENDA.name]
URL = "https://planning.example.gov/agendas/a.pdf"
PROSE_PATTERN = (r"(?ms)^Case (?P<case_number>Z-\d+-\d+)\s+(?P<address>[^\n]+)\n"
                 r"(?P<title>.*?)(?=^Case |^END|\Z)")


def options(table: dict[str, Any]) -> CaseOptions:
    return parse_case_options(Path("sources/test.toml"), "cases", table)[0]


def agenda_options() -> CaseOptions:
    extraction = EXPECTED["extraction"]
    return options({"type": "pdf", "pdf": {"pattern": extraction["regex"],
                                           "strip": extraction["strip_before_compare"]}})


def pdf_of(pages: list[list[str]], *, password: str | None = None) -> bytes:
    document = FPDF()
    document.set_auto_page_break(False)
    for lines in pages:
        document.add_page()
        document.set_font("helvetica", size=11)
        for line in lines:
            document.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    if password is not None:
        document.set_encryption(owner_password="owner-" + password, user_password=password)
    return bytes(document.output())


def prose_agenda() -> bytes:
    return pdf_of([
        ["PLANNING COMMISSION AGENDA", "March 5, 2024", "Call to order"],
        ["PUBLIC HEARINGS",
         "Case Z-24-01 100 Main Street",
         "Rezoning of 2.5 acres from R-1 to C-2.",
         "Case Z-24-02 200 Oak Avenue",
         "Rezoning from R-1 to R-3 for townhouses,"],
        ["continued: with a traffic study.",
         "Case Z-24-03 300 Elm Road",
         "Text amendment.",
         "END"],
    ])


def table_agenda(rows: int) -> bytes:
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=10)
    with document.table(repeat_headings=1) as table:
        header = table.row()
        for label in ("Case No.", "Location", "Request", "Status"):
            header.cell(label)
        for n in range(1, rows + 1):
            row = table.row()
            for value in (f"Z-24-{n:02d}", f"{n} Main St", "R-1 to C-2", "Continued"):
                row.cell(value)
    return bytes(document.output())


def image_only_pdf() -> bytes:
    image = Image.new("RGB", (200, 100), "white")
    for x in range(20, 180):
        image.putpixel((x, 50), (0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    document = FPDF()
    document.add_page()
    document.image(io.BytesIO(buffer.getvalue()), x=10, y=10, w=100)
    return bytes(document.output())


def test_real_agenda_gives_exactly_its_two_cases() -> None:
    reading = read_pdf(AGENDA.read_bytes(), url=URL, options=agenda_options())
    assert reading.quarantine is None
    assert [case.case_number for case in reading.cases] == EXPECTED["case_ids"]


def test_real_agenda_groups_equal_the_expected_values() -> None:
    reading = read_pdf(AGENDA.read_bytes(), url=URL, options=agenda_options())
    for case, expected in zip(reading.cases, EXPECTED["cases"], strict=True):
        assert case.case_number == expected["case_number"]
        assert case.address == expected["address"]
        for group in ("item", "request", "description"):
            assert case.attrs[group] == expected[group]


def test_real_agenda_cases_record_their_pages_and_document() -> None:
    reading = read_pdf(AGENDA.read_bytes(), url=URL, options=agenda_options())
    assert [case.pages for case in reading.cases] == [(3,), (4,)]
    assert {case.document_sha256 for case in reading.cases} == {EXPECTED["source"]["sha256"]}
    assert {case.document_url for case in reading.cases} == {URL}
    assert reading.page_count == 4


def test_strip_removes_the_browser_print_header_inside_a_value() -> None:
    extraction = EXPECTED["extraction"]
    unstripped = options({"type": "pdf", "pdf": {
        "pattern": r"(?ms)^3\. (?P<case_number>9665) (?P<rest>.*?)(?=^5\. )"}})
    stripped = options({"type": "pdf", "pdf": {
        "pattern": r"(?ms)^3\. (?P<case_number>9665) (?P<rest>.*?)(?=^5\. )",
        "strip": extraction["strip_before_compare"]}})
    body = AGENDA.read_bytes()
    assert "Planning Commission Regular Meeting" in read_pdf(
        body, url=URL, options=unstripped).cases[0].attrs["rest"]
    assert "Planning Commission Regular Meeting" not in read_pdf(
        body, url=URL, options=stripped).cases[0].attrs["rest"]


def test_a_case_continuing_over_a_page_break_records_both_pages() -> None:
    reading = read_pdf(prose_agenda(), url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN}}))
    cases = {case.case_number: case for case in reading.cases}
    assert list(cases) == ["Z-24-01", "Z-24-02", "Z-24-03"]
    assert cases["Z-24-01"].pages == (2,)
    assert cases["Z-24-02"].pages == (2, 3)
    assert cases["Z-24-02"].title == ("Rezoning from R-1 to R-3 for townhouses, continued: "
                                      "with a traffic study.")
    assert cases["Z-24-03"].pages == (3,)


def test_pattern_groups_that_are_not_case_fields_go_to_attrs() -> None:
    pattern = (r"(?m)^Case (?P<case_number>Z-\d+-\d+) (?P<address>.+)\n"
               r"Rezoning of (?P<acreage>[\d.]+ acres) from (?P<from_zoning>\S+) to "
               r"(?P<to_zoning>\S+?)\.(?P<remark>.*)$")
    reading = read_pdf(prose_agenda(), url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": pattern}}))
    (case,) = reading.cases
    assert (case.acreage, case.from_zoning, case.to_zoning) == (2.5, "R-1", "C-2")
    assert "remark" not in case.attrs  # an empty group is no value


def test_a_table_spanning_pages_drops_the_repeated_header() -> None:
    reading = read_pdf(table_agenda(70), url=URL, options=options({
        "type": "pdf", "pdf": {"table": True},
        "fields": {"case_number": {"column": "Case No."}, "address": {"column": "Location"},
                   "status": {"column": "Status"},
                   "to_zoning": {"column": "Request", "pattern": r"to (?P<to_zoning>\S+)"}},
    }))
    assert reading.quarantine is None
    assert [case.case_number for case in reading.cases] == [f"Z-24-{n:02d}" for n in range(1, 71)]
    assert reading.cases[0].pages == (1,)
    assert reading.cases[-1].pages[-1] > 1
    assert {case.status_class for case in reading.cases} == {StatusClass.PENDING}
    assert {case.to_zoning for case in reading.cases} == {"C-2"}
    assert reading.rejected == ()


def test_html_error_page_is_not_pdf_whatever_its_content_type() -> None:
    body = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"
    reading = read_pdf(body, url=URL, options=agenda_options())
    assert reading.quarantine is DocumentQuarantine.NOT_PDF
    assert reading.detail is not None and "DOCTYPE" in reading.detail


def test_a_document_over_the_limit_is_too_large() -> None:
    limited = options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN,
                                              "max_document_mb": 0.001}})
    assert read_pdf(prose_agenda(), url=URL, options=limited).quarantine is (
        DocumentQuarantine.TOO_LARGE)


def test_a_password_protected_pdf_is_encrypted() -> None:
    body = pdf_of([["Case Z-24-01 100 Main Street", "Rezoning."]], password="s3cret-pw")
    reading = read_pdf(body, url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN}}))
    assert reading.quarantine is DocumentQuarantine.ENCRYPTED


def test_a_truncated_pdf_is_malformed() -> None:
    body = prose_agenda()
    reading = read_pdf(body[: len(body) // 3], url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN}}))
    assert reading.quarantine is DocumentQuarantine.MALFORMED
    assert reading.detail


def test_garbage_after_the_header_is_malformed() -> None:
    reading = read_pdf(b"%PDF-1.7\n" + bytes(range(256)) * 8, url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN}}))
    assert reading.quarantine is DocumentQuarantine.MALFORMED


def test_an_image_only_scan_has_no_text_layer() -> None:
    reading = read_pdf(image_only_pdf(), url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN}}))
    assert reading.quarantine is DocumentQuarantine.NO_TEXT_LAYER


def test_text_without_a_matching_case_is_no_match() -> None:
    body = pdf_of([["MINUTES OF THE MEETING", "Nothing was heard."]])
    reading = read_pdf(body, url=URL,
                       options=options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN}}))
    assert reading.quarantine is DocumentQuarantine.NO_MATCH


def test_the_filter_drops_cases_whose_field_does_not_match() -> None:
    reading = read_pdf(prose_agenda(), url=URL, options=options({
        "type": "pdf", "pdf": {"pattern": PROSE_PATTERN},
        "filter": {"title": r"(?i)\brezon"}}))
    assert [case.case_number for case in reading.cases] == ["Z-24-01", "Z-24-02"]
    assert reading.filtered_out == 1


def test_a_reading_outliving_its_time_limit_is_killed_and_malformed() -> None:
    reading = read_pdf_in_child(AGENDA.read_bytes(), URL, agenda_options(), 0.0001)
    assert reading.quarantine is DocumentQuarantine.MALFORMED
    assert reading.detail is not None and "limit" in reading.detail


async def test_bounded_reading_runs_off_the_loop_and_gives_the_cases() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    reading = await read_pdf_bounded(AGENDA.read_bytes(), url=URL, options=agenda_options(),
                                     timeout_s=120)
    task.cancel()
    assert [case.case_number for case in reading.cases] == EXPECTED["case_ids"]
    assert ticks > 1


@pytest.mark.parametrize("reason", ["not_pdf", "too_large"])
async def test_bounded_reading_quarantines_like_the_sync_reader(reason: str) -> None:
    limited = options({"type": "pdf", "pdf": {"pattern": PROSE_PATTERN,
                                              "max_document_mb": 0.001}})
    body = b"<html>oops</html>" if reason == "not_pdf" else prose_agenda()
    reading = await read_pdf_bounded(body, url=URL, options=limited, timeout_s=120)
    assert reading.quarantine == reason
