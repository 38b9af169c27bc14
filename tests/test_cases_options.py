"""Case feed options: valid configs of each type load; every error names file, key and fix."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from zoningsync.cases.model import StatusClass
from zoningsync.cases.options import parse_case_options
from zoningsync.errors import SourceConfigError

SOURCE = Path("sources/lake.toml")
CONTRACT = (r"""
[[feeds]]
id = "cases"
kind = "cases"
type = "html"
url = "https://planning.example.gov/cases"
schedule = "every 1h"
rate_limit = { requests_per_second = 1, burst = 2 }
parcel_id_pattern = '\d{4}-[A-Z]-\d{5}'
status_map = { "Approved by Council" = "approved", "Continued" = "pending" }

[feeds.html]
rows = "table#cases > tbody > tr"
next = "a[rel=next]"
max_pages = 50
detail = "td a.case-link"
documents = "a[href$='.pdf']"
date_format = "%m/%d/%Y"

[feeds.pdf]
pattern = '''(?ms)^Case (?P<case_number>Z-\d+-\d+)\s+(?P<address>[^\n]+)\n"""
    r"""(?P<title>.*?)(?=^Case |\Z)'''
strip = '(?m)^Page \d+ of \d+$'
table = false
max_document_mb = 20
parse_timeout_s = 30

[feeds.filter]
title = '(?i)\bzon(e|ing)\b|rezon'

[feeds.fields]
case_number = "td:nth-of-type(1) a"
status = { column = "Status" }
hearing_at = { column = "Hearing Date", format = "%B %d, %Y" }
detail_url = { selector = "td a", attr = "href" }
parcel_ids = { selector = "td.pins", split = '[,;\s]+' }
address = { selector = "td:nth-of-type(7)", pattern = '(?: at )(?P<address>.+?)(?: - App No|$)' }
meeting = { page = "#meeting-date" }
""")


def load(table: dict[str, Any]) -> Any:
    return parse_case_options(SOURCE, "cases", table)


def contract() -> dict[str, Any]:
    feed: dict[str, Any] = tomllib.loads(CONTRACT)["feeds"][0]
    return feed


def test_the_contract_html_feed_loads_every_key() -> None:
    options, consumed = load(contract())
    assert options.type == "html"
    assert options.html.rows == "table#cases > tbody > tr"
    assert options.html.max_pages == 50
    assert options.pdf.pattern.groupindex.keys() >= {"case_number", "address", "title"}
    assert options.status_map == {"approved by council": StatusClass.APPROVED,
                                  "continued": StatusClass.PENDING}
    assert options.fields["hearing_at"].column == "Hearing Date"
    assert options.fields["detail_url"].attr == "href"
    assert options.fields["meeting"].page == "#meeting-date"
    assert options.max_document_bytes == 20 * 1024 * 1024
    assert options.parse_timeout_s == 30
    assert options.respect_robots is True
    assert {"id", "kind", "url", "schedule", "rate_limit"}.isdisjoint(consumed)
    assert set(contract()) - {"id", "kind", "url", "schedule", "rate_limit"} <= consumed


def test_a_pdf_feed_loads_with_default_limits() -> None:
    options, _ = load({"type": "pdf", "pdf": {"pattern": "(?P<case_number>Z-\\d+)"}})
    assert (options.max_document_mb, options.parse_timeout_s) == (50.0, 60.0)


def test_a_pdf_table_feed_loads_with_settings() -> None:
    options, _ = load({"type": "pdf", "pdf": {"table": True, "table_settings": {
        "vertical_strategy": "text"}}, "fields": {"case_number": {"column": "Case"}}})
    assert options.pdf.table_settings == {"vertical_strategy": "text"}


def test_a_legistar_feed_loads() -> None:
    options, _ = load({"type": "legistar", "respect_robots": False, "legistar": {
        "client": "pittsburgh", "matter_types": ["Ordinance"], "since_days": 30}})
    assert (options.legistar.client, options.legistar.matter_types) == ("pittsburgh",
                                                                        ("Ordinance",))
    assert options.respect_robots is False


def test_a_custom_parser_feed_needs_no_rows() -> None:
    options, _ = load({"parser": "tests.test_cases_parser:parse_bulletin"})
    assert options.parser == "tests.test_cases_parser:parse_bulletin"


def test_the_parcel_pattern_matches_any_case() -> None:
    options, _ = load({"type": "pdf", "parcel_id_pattern": "[A-Z]{2}\\d+",
                       "pdf": {"pattern": "(?P<case_number>Z)"}})
    assert options.parcel_id_pattern.flags & re.IGNORECASE


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("type", {"type": "arcgis"}, "feeds.cases.type"),
    ("type missing", {}, "feeds.cases.type"),
    ("html without rows", {"type": "html"}, "feeds.cases.html.rows"),
    ("rows missing", {"type": "html", "html": {"next": "a"}}, "feeds.cases.html.rows"),
    ("bad rows css", {"type": "html", "html": {"rows": "table[id="}}, "feeds.cases.html.rows"),
    ("unknown html key", {"type": "html", "html": {"rows": "tr", "row": "tr"}},
     "feeds.cases.html.row"),
    ("max_pages zero", {"type": "html", "html": {"rows": "tr", "max_pages": 0}},
     "feeds.cases.html.max_pages"),
    ("max_pages text", {"type": "html", "html": {"rows": "tr", "max_pages": "5"}},
     "feeds.cases.html.max_pages"),
    ("date_format", {"type": "html", "html": {"rows": "tr", "date_format": "mm/dd/yyyy"}},
     "feeds.cases.html.date_format"),
    ("pdf without pattern", {"type": "pdf"}, "feeds.cases.pdf.pattern"),
    ("bad pattern", {"type": "pdf", "pdf": {"pattern": "(?P<case_number>"}},
     "feeds.cases.pdf.pattern"),
    ("pattern without key", {"type": "pdf", "pdf": {"pattern": "(?P<number>Z)"}},
     "feeds.cases.pdf.pattern"),
    ("bad strip", {"type": "pdf", "pdf": {"pattern": "(?P<case_number>Z)", "strip": "["}},
     "feeds.cases.pdf.strip"),
    ("nan limit", {"type": "pdf", "pdf": {"pattern": "(?P<case_number>Z)",
                                          "max_document_mb": float("nan")}},
     "feeds.cases.pdf.max_document_mb"),
    ("inf timeout", {"type": "pdf", "parse_timeout_s": float("inf"),
                     "pdf": {"pattern": "(?P<case_number>Z)"}}, "feeds.cases.parse_timeout_s"),
    ("limit twice", {"type": "pdf", "max_document_mb": 5,
                     "pdf": {"pattern": "(?P<case_number>Z)", "max_document_mb": 5}},
     "feeds.cases.max_document_mb"),
    ("table settings not a table", {"type": "pdf", "pdf": {"table": True,
                                                           "table_settings": "lines"}},
     "feeds.cases.pdf.table_settings"),
    ("legistar without client", {"type": "legistar"}, "feeds.cases.legistar.client"),
    ("legistar bad client", {"type": "legistar", "legistar": {"client": "pitts burgh"}},
     "feeds.cases.legistar.client"),
    ("legistar types", {"type": "legistar", "legistar": {"client": "x", "matter_types": "Ord"}},
     "feeds.cases.legistar.matter_types"),
    ("column and selector", {"type": "html", "html": {"rows": "tr"}, "fields": {
        "status": {"column": "Status", "selector": "td"}}}, "feeds.cases.fields.status"),
    ("unknown field key", {"type": "html", "html": {"rows": "tr"}, "fields": {
        "status": {"colum": "Status"}}}, "feeds.cases.fields.status.colum"),
    ("field form", {"type": "html", "html": {"rows": "tr"}, "fields": {"status": 3}},
     "feeds.cases.fields.status"),
    ("field css", {"type": "html", "html": {"rows": "tr"}, "fields": {"status": "td::"}},
     "feeds.cases.fields.status"),
    ("field pattern", {"type": "html", "html": {"rows": "tr"}, "fields": {
        "address": {"selector": "td", "pattern": "(?P<address>"}}},
     "feeds.cases.fields.address.pattern"),
    ("format on a text field", {"type": "html", "html": {"rows": "tr"}, "fields": {
        "status": {"column": "Status", "format": "%Y"}}}, "feeds.cases.fields.status.format"),
    ("css in a pdf table", {"type": "pdf", "pdf": {"table": True}, "fields": {
        "status": "td"}}, "feeds.cases.fields.status"),
    ("filter regex", {"type": "html", "html": {"rows": "tr"}, "filter": {"title": "("}},
     "feeds.cases.filter.title"),
    ("status class", {"type": "html", "html": {"rows": "tr"}, "status_map": {
        "Approved": "ok"}}, "feeds.cases.status_map.Approved"),
    ("parcel pattern", {"type": "html", "html": {"rows": "tr"}, "parcel_id_pattern": "\\d{4"
                        "-[A-"}, "feeds.cases.parcel_id_pattern"),
    ("robots", {"type": "html", "html": {"rows": "tr"}, "respect_robots": "yes"},
     "feeds.cases.respect_robots"),
    ("parser spec", {"parser": "tests.test_cases_parser"}, "feeds.cases.parser"),
    ("parser import", {"parser": "tests.no_such_module:parse"}, "feeds.cases.parser"),
    ("parser function", {"parser": "tests.test_cases_parser:no_such_function"},
     "feeds.cases.parser"),
]


@pytest.mark.parametrize(("table", "key"), [(t, k) for _, t, k in BAD],
                         ids=[name for name, _, _ in BAD])
def test_a_bad_value_names_file_and_key_in_one_line(table: dict[str, Any], key: str) -> None:
    with pytest.raises(SourceConfigError) as caught:
        load(table)
    message = caught.value.message
    assert message.startswith(f"{SOURCE}: {key}: ")
    assert "\n" not in message
    assert caught.value.exit_code == 2
