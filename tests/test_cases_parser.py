"""Custom parsers: loaded by name, given the fetched page, their cases validated like any other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zoningsync.cases.options import CaseOptions, parse_case_options
from zoningsync.cases.parser import FetchedDocument, ParserFailed, load_parser, run_parser
from zoningsync.errors import SourceConfigError

BULLETIN = ("ZONING BULLETIN\n"
            "Z-31 | 12 Pine St | rezoning R-1 to R-2 | Filed 02/01/2024\n"
            "Z-32 | 14 Pine St | variance | Approved\n").encode("cp1252")


def parse_bulletin(document: FetchedDocument) -> Iterator[dict[str, Any]]:
    """A custom parser for a pipe-separated text bulletin."""
    for line in document.text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 4:
            status = parts[3]
            filed = re.search(r"\d+/\d+/\d+", status)
            yield {"case_number": parts[0], "address": parts[1], "title": parts[2],
                   "status": status, "filed_at": filed.group(0) if filed else None,
                   "source_line": line}


def parse_badly(document: FetchedDocument) -> Iterator[Any]:
    yield {"case_number": "Z-1"}
    yield "not a dict"
    yield {"title": "no number"}


def parse_and_fail(document: FetchedDocument) -> Iterator[dict[str, Any]]:
    raise RuntimeError(f"cannot parse {document.url}")


def options(parser: str, **extra: Any) -> CaseOptions:
    return parse_case_options(Path("sources/t.toml"), "bulletin",
                              {"parser": f"tests.test_cases_parser:{parser}", **extra})[0]


def document() -> FetchedDocument:
    return FetchedDocument.from_bytes("https://example.gov/bulletin.txt?token=abcdef123456",
                                      BULLETIN, "text/plain")


def test_a_parser_is_loaded_by_its_dotted_name() -> None:
    assert load_parser("tests.test_cases_parser:parse_bulletin") is parse_bulletin


def test_an_import_error_is_a_config_error() -> None:
    with pytest.raises(SourceConfigError):
        load_parser("tests.missing_parser_module:parse")


def test_a_parser_yields_cases_converted_like_any_source() -> None:
    batch = run_parser(parse_bulletin, document(), options("parse_bulletin"))
    first, second = batch.cases
    assert (first.case_number, first.address, first.filed_at.isoformat()) == (
        "Z-31", "12 Pine St", "2024-02-01T00:00:00+00:00")
    assert first.attrs["source_line"].startswith("Z-31 |")
    assert second.status_class == "approved"


def test_the_filter_applies_to_parsed_cases() -> None:
    batch = run_parser(parse_bulletin, document(),
                       options("parse_bulletin", filter={"title": "rezon"}))
    assert [case.case_number for case in batch.cases] == ["Z-31"]


def test_what_is_not_a_case_is_rejected_not_stored() -> None:
    batch = run_parser(parse_badly, document(), options("parse_badly"))
    assert [case.case_number for case in batch.cases] == ["Z-1"]
    assert [r.reason for r in batch.rejected] == ["invalid", "missing_key"]


def test_a_failing_parser_fails_the_document_without_leaking_secrets() -> None:
    with pytest.raises(ParserFailed) as caught:
        run_parser(parse_and_fail, document(), options("parse_and_fail"))
    assert "RuntimeError" in caught.value.message
    assert "abcdef123456" not in caught.value.message
