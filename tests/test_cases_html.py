"""County portal HTML → cases: field forms, tables as grids, charsets, details, the layout guard."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoningsync.cases.build import finish_cases
from zoningsync.cases.html import layout_problem, read_case_page, read_detail_page
from zoningsync.cases.model import StatusClass
from zoningsync.cases.options import CaseOptions, parse_case_options

FIXTURES = Path(__file__).parent / "fixtures" / "cases"
LIST_URL = "https://planning.lake.example.gov/planning/cases.aspx"
PAGE = (FIXTURES / "county_cases_page1.html").read_bytes()
DETAIL = (FIXTURES / "county_case_detail.html").read_bytes()
FIELDS: dict[str, Any] = {
    "case_number": "td:nth-of-type(1) a",
    "status": {"column": "Status"},
    "hearing_at": {"column": "Hearing Date"},
    "from_zoning": {"column": "From"},
    "to_zoning": {"column": "To"},
    "detail_url": {"selector": "td a", "attr": "href"},
    "parcel_ids": {"selector": "td.pins", "split": r"[,;\s]+"},
    "address": {"column": "Description",
                "pattern": r"(?: at )(?P<address>.+?)(?: - App No (?P<app_no>\d+)|$)"},
    "acreage": {"column": "Description", "pattern": r"(?P<acreage>[\d.]+) acres"},
    "meeting": {"page": "#meeting-date", "pattern": r":\s*(?P<meeting>.+)"},
}


def options(**overrides: Any) -> CaseOptions:
    table: dict[str, Any] = {
        "type": "html",
        "html": {"rows": "table#cases > tbody > tr", "next": "a[rel=next]",
                 "documents": "a[href$='.pdf']"},
        "fields": FIELDS,
        "status_map": {"Approved  by council": "approved"},
    }
    table.update(overrides)
    return parse_case_options(Path("sources/lake.toml"), "cases", table)[0]


def read(body: bytes = PAGE, content_type: str | None = "text/html", **overrides: Any) -> Any:
    return read_case_page(body, url=LIST_URL, content_type=content_type,
                          options=options(**overrides))


def test_every_field_form_reads_the_first_row() -> None:
    case = read().cases[0]
    assert case.case_number == "Z-2024-0101"
    assert (case.from_zoning, case.to_zoning) == ("R-1", "C-2")
    assert case.status == "Approved by Council"
    assert case.hearing_at == datetime(2024, 3, 5, tzinfo=UTC)
    assert case.detail_url == "https://planning.lake.example.gov/planning/case.aspx?id=101"
    assert case.parcel_ids == ("1234-A-00001", "1234-A-00002")
    assert case.address == "100 Main St"
    assert case.acreage == 2.5


def test_other_named_groups_of_a_pattern_go_to_attrs() -> None:
    assert read().cases[0].attrs["app_no"] == "5501"


def test_a_page_value_is_read_once_and_kept_in_attrs() -> None:
    assert {case.attrs["meeting"] for case in read().cases} == {"March 5, 2024"}


def test_a_column_finds_the_cell_a_rowspan_carries_down() -> None:
    assert read().cases[1].hearing_at == datetime(2024, 3, 5, tzinfo=UTC)


def test_a_colspan_cell_keeps_later_columns_in_place() -> None:
    case = read().cases[1]
    assert (case.from_zoning, case.to_zoning) == ("PUD amendment", "PUD amendment")
    assert case.status == "Continued"


def test_header_rows_repeated_in_the_body_are_not_cases() -> None:
    page = read()
    assert [case.case_number for case in page.cases] == [
        "Z-2024-0101", "Z-2024-0102", "Z-2024-0103", "Z-2024-0104"]
    assert page.rows_seen == 4
    assert page.header_rows_skipped == 1


def test_blanks_and_nbsp_collapse_in_texts_and_keys() -> None:
    case = read().cases[2]
    assert case.case_number == "Z-2024-0103"
    assert case.parcel_ids == ()


def test_dates_in_common_us_forms_with_weekday_and_time() -> None:
    cases = read().cases
    assert cases[2].hearing_at == datetime(2024, 4, 2, tzinfo=UTC)
    assert cases[3].hearing_at == datetime(2024, 2, 6, 18, 30, tzinfo=UTC)


def test_a_field_format_reads_dates_strictly_by_it() -> None:
    fields = dict(FIELDS, hearing_at={"column": "Hearing Date", "format": "%B %d, %Y"})
    assert read(fields=fields).cases[0].hearing_at == datetime(2024, 3, 5, tzinfo=UTC)


def test_links_are_absolute_next_and_documents() -> None:
    page = read()
    assert page.next_url == "https://planning.lake.example.gov/planning/cases.aspx?page=2"
    assert page.document_urls == (
        "https://planning.lake.example.gov/planning/docs/Z-2024-0101-staff-report.pdf",
        "https://planning.lake.example.gov/planning/agendas/2024-03-05-agenda.pdf")
    assert page.rows[0].document_urls == page.document_urls[:1]
    assert page.cases[0].document_url == page.document_urls[0]


def test_status_map_first_then_common_words() -> None:
    classes = [case.status_class for case in read().cases]
    assert classes == [StatusClass.APPROVED, StatusClass.PENDING, StatusClass.PENDING,
                       StatusClass.DENIED]


def test_status_map_overrides_the_default_words() -> None:
    page = read(status_map={"Denied": "withdrawn"})
    assert page.cases[3].status_class is StatusClass.WITHDRAWN


def test_the_filter_keeps_only_cases_whose_field_matches() -> None:
    page = read(filter={"address": r"(?i)\b(main|oak)\b", "status": "Approved|Continued"})
    assert [case.case_number for case in page.cases] == ["Z-2024-0101", "Z-2024-0102"]
    assert page.batch.filtered_out == 2


def test_parcel_ids_are_found_by_the_pattern_when_no_field_names_them() -> None:
    fields = {k: v for k, v in FIELDS.items() if k != "parcel_ids"}
    page = read(fields=fields, parcel_id_pattern=r"\d{4}-[A-Z]-\d{5}")
    assert page.cases[2].parcel_ids == ("5678-C-00004",)
    assert page.cases[0].parcel_ids == ("1234-A-00001", "1234-A-00002")


def test_the_parcel_pattern_normalizes_split_ids() -> None:
    page = read(parcel_id_pattern=r"\d{4}-[A-Z]-\d{5}")
    assert page.cases[1].parcel_ids == ("1234-B-00003",)


def test_a_cp1252_page_labelled_utf8_decodes_as_cp1252() -> None:
    body = ("<html><head><meta charset='utf-8'></head><body><table id='cases'><tbody>"
            "<tr><td><a>Z-1</a></td><td>Caf\u00e9 \u2013 Ni\u00f1o\u2019s</td></tr>"
            "</tbody></table></body></html>").encode("cp1252")
    page = read(body, "text/html; charset=utf-8",
                fields={"case_number": "td a", "title": "td:nth-of-type(2)"})
    assert page.cases[0].title == "Caf\u00e9 \u2013 Ni\u00f1o\u2019s"


def test_a_meta_charset_is_used_when_the_header_has_none() -> None:
    body = ("<html><head><meta http-equiv='Content-Type' content='text/html; "
            "charset=windows-1252'></head><body><table id='cases'><tbody><tr><td><a>Z-2</a>"
            "</td><td>\u201cQuoted\u201d</td></tr></tbody></table></body></html>"
            ).encode("cp1252")
    page = read(body, None, fields={"case_number": "td a", "title": "td:nth-of-type(2)"})
    assert page.cases[0].title == "\u201cQuoted\u201d"


def test_a_grouped_two_row_header_names_each_column() -> None:
    body = b"""<table id="cases"><thead>
      <tr><th rowspan="2">Case</th><th colspan="2">Zoning</th><th rowspan="2">Status</th></tr>
      <tr><th>From</th><th>To</th></tr></thead>
      <tbody><tr><td>Z-9</td><td>R-1</td><td>B-2</td><td>Filed</td></tr></tbody></table>"""
    page = read(body, fields={"case_number": {"column": "Case"},
                              "from_zoning": {"column": "From"},
                              "to_zoning": {"column": "Zoning To"},
                              "status": {"column": "status"}})
    case = page.cases[0]
    assert (case.case_number, case.from_zoning, case.to_zoning, case.status) == (
        "Z-9", "R-1", "B-2", "Filed")


def test_a_detail_page_fills_blanks_and_overrides_row_values() -> None:
    opts = options(
        html={"rows": "table#cases > tbody > tr", "detail": "td a.case-link",
              "documents": "a[href$='.pdf']"},
        fields=dict(FIELDS, applicant={"column": "Applicant"}, case_type={"column": "Case Type"},
                    filed_at={"column": "Filed"}, acreage={"column": "Acreage"}))
    page = read_case_page(PAGE, url=LIST_URL, content_type="text/html", options=opts)
    row = page.rows[1]
    assert row.detail_url == "https://planning.lake.example.gov/planning/case.aspx?id=102"
    merged = read_detail_page(DETAIL, url=row.detail_url, content_type="text/html",
                              options=opts, row=row)
    (case,) = finish_cases([merged], opts).cases
    assert case.case_number == "Z-2024-0102"
    assert case.applicant == "Oak Avenue Partners LLC"
    assert case.status == "Approved" and case.status_class is StatusClass.APPROVED
    assert case.case_type == "Planned Unit Development"
    assert case.filed_at == datetime(2024, 1, 15, tzinfo=UTC)
    assert case.acreage == 3.2
    assert case.hearing_at == datetime(2024, 3, 5, tzinfo=UTC)
    assert "https://planning.lake.example.gov/docs/Z-2024-0102/ordinance.pdf" in (
        merged.document_urls)


def test_the_guard_fails_a_page_that_gave_rows_before_and_now_gives_none() -> None:
    page = read(html={"rows": "table#cases-v2 > tbody > tr"})
    problem = layout_problem(page, had_rows_before=True)
    assert problem is not None and "table#cases-v2 > tbody > tr" in problem


def test_the_guard_accepts_an_empty_first_page() -> None:
    page = read(html={"rows": "table#cases-v2 > tbody > tr"})
    assert layout_problem(page, had_rows_before=False) is None


def test_the_guard_fails_when_most_rows_lack_a_case_number() -> None:
    page = read(fields=dict(FIELDS, case_number="td:nth-of-type(1) span.case"))
    problem = layout_problem(page, had_rows_before=False)
    assert page.rows_missing_key == 4
    assert problem is not None and "td:nth-of-type(1) span.case" in problem
    assert [r.reason for r in page.batch.rejected] == ["missing_key"] * 4


def test_the_guard_is_quiet_on_a_healthy_page() -> None:
    assert layout_problem(read(), had_rows_before=True) is None
