"""Normalizing published texts: blanks, case numbers, status words, dates, acreage, parcel ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zoningsync.cases.build import build_case, json_ready
from zoningsync.cases.model import CaseRecord, StatusClass
from zoningsync.cases.normalize import (
    case_number,
    collapse,
    parcel_ids,
    parse_acreage,
    parse_datetime,
    status_class,
)
from zoningsync.cases.options import parse_case_options


def test_collapse_treats_nbsp_and_newlines_as_one_blank() -> None:
    assert collapse("  Z-24\u00a0-\n 01\t ") == "Z-24 - 01"
    assert collapse(" \u00a0 ") is None


def test_case_numbers_are_trimmed_with_blanks_collapsed() -> None:
    assert case_number("  ZC  2024-01 \n") == "ZC 2024-01"


@pytest.mark.parametrize(("status", "expected"), [
    ("Approved", StatusClass.APPROVED), ("ADOPTED", StatusClass.APPROVED),
    ("Passed Finally", StatusClass.APPROVED), ("Granted w/ conditions", StatusClass.APPROVED),
    ("Enacted", StatusClass.APPROVED), ("Denied", StatusClass.DENIED),
    ("Rejected", StatusClass.DENIED), ("Failed", StatusClass.DENIED),
    ("Withdrawn by applicant", StatusClass.WITHDRAWN), ("Dismissed", StatusClass.WITHDRAWN),
    ("Cancelled", StatusClass.WITHDRAWN), ("Pending approval", StatusClass.PENDING),
    ("Filed", StatusClass.PENDING), ("Hearing scheduled", StatusClass.PENDING),
    ("Continued to 5/1", StatusClass.PENDING), ("Under  Review", StatusClass.PENDING),
    ("In review", StatusClass.PENDING), ("Submitted", StatusClass.PENDING),
    ("Tabled", StatusClass.PENDING), ("Referred to committee", StatusClass.PENDING),
    ("Zebra", StatusClass.UNKNOWN), (None, StatusClass.UNKNOWN),
])
def test_common_status_words_classify(status: str | None, expected: StatusClass) -> None:
    assert status_class(status, {}) is expected


def test_the_status_map_wins_compared_blank_and_case_insensitively() -> None:
    mapping = {"continued": StatusClass.DENIED}
    assert status_class("  CONTINUED ", mapping) is StatusClass.DENIED


@pytest.mark.parametrize(("text", "expected"), [
    ("03/05/2024", datetime(2024, 3, 5, tzinfo=UTC)),
    ("3/5/24", datetime(2024, 3, 5, tzinfo=UTC)),
    ("March 5, 2024", datetime(2024, 3, 5, tzinfo=UTC)),
    ("Mar 5, 2024", datetime(2024, 3, 5, tzinfo=UTC)),
    ("Sept. 9, 2024", datetime(2024, 9, 9, tzinfo=UTC)),
    ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
    ("2024-03-05T00:00:00", datetime(2024, 3, 5, tzinfo=UTC)),
    ("2024-03-05T18:00:00-05:00", datetime(2024, 3, 5, 23, tzinfo=UTC)),
    ("Tuesday, March 5, 2024", datetime(2024, 3, 5, tzinfo=UTC)),
    ("Tue 03/05/2024 6:30 PM", datetime(2024, 3, 5, 18, 30, tzinfo=UTC)),
    ("March 5, 2024 at 7 p.m.", datetime(2024, 3, 5, 19, tzinfo=UTC)),
    ("TBD", None),
    ("13/45/2024", None),
])
def test_dates_in_the_common_us_forms(text: str, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


def test_a_format_is_tried_first() -> None:
    assert parse_datetime("05.03.2024", "%d.%m.%Y") == datetime(2024, 3, 5, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("12.5 acres", 12.5), ("12.5 ac", 12.5), ("±3", 3.0), ("1,234.5 AC", 1234.5),
    ("21,780 sq ft", 0.5), ("n/a", None),
])
def test_acreage(text: str, expected: float | None) -> None:
    assert parse_acreage(text) == expected


def test_parcel_ids_by_pattern_are_its_matches_upper_cased_once_each() -> None:
    pattern = re.compile(r"\d{4}-[A-Z]-\d{5}", re.IGNORECASE)
    assert parcel_ids(["1234-a-00001 ", "see 1234-A-00001 and 9999-Z-12345"], pattern) == (
        "1234-A-00001", "9999-Z-12345")


def test_parcel_ids_by_split_are_trimmed_items() -> None:
    assert parcel_ids("12-34; 56-78 ,", None, re.compile(r"[,;]")) == ("12-34", "56-78")



def test_build_puts_canonical_fields_on_the_record_and_the_rest_in_attrs() -> None:
    opts = parse_case_options(Path("s.toml"), "f", {"type": "pdf", "pdf": {
        "pattern": "(?P<case_number>Z)"}})[0]
    case = build_case({"case_number": " Z-1 ", "status": "Approved", "acreage": "2 ac",
                       "hearing_at": "March 5, 2024", "ward": "7", "empty": None}, opts)
    assert isinstance(case, CaseRecord)
    assert case.case_number == "Z-1" and case.acreage == 2.0
    assert case.status_class is StatusClass.APPROVED
    assert case.hearing_at == datetime(2024, 3, 5, tzinfo=UTC)
    assert case.attrs == {"ward": "7"}


def test_an_unreadable_date_keeps_its_text_in_attrs() -> None:
    opts = parse_case_options(Path("s.toml"), "f", {"type": "pdf", "pdf": {
        "pattern": "(?P<case_number>Z)"}})[0]
    case = build_case({"case_number": "Z-1", "hearing_at": "to be announced"}, opts)
    assert isinstance(case, CaseRecord)
    assert case.hearing_at is None and case.attrs == {"hearing_at_text": "to be announced"}


def test_a_case_without_a_number_is_rejected_as_missing_key() -> None:
    opts = parse_case_options(Path("s.toml"), "f", {"type": "pdf", "pdf": {
        "pattern": "(?P<case_number>Z)"}})[0]
    rejected = build_case({"case_number": "  ", "title": "x"}, opts)
    assert not isinstance(rejected, CaseRecord) and rejected.reason == "missing_key"


def test_attrs_are_json_ready() -> None:
    assert json_ready({"when": datetime(2024, 1, 2, tzinfo=UTC), "n": [1, " a  b "]}) == {
        "when": "2024-01-02T00:00:00+00:00", "n": [1, "a b"]}
