"""From the raw values a reader found to a `CaseRecord`, or the reason there is none.

Readers stop at a dict of field name → text (or list of texts); this step owns
what those names mean: canonical fields are converted, everything else goes to
`attrs` as JSON-ready values, and a case without a number is rejected as
`missing_key` (a quarantine row, never a silent loss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from zoningsync.cases.model import CASE_FIELDS, CaseRecord
from zoningsync.cases.normalize import (
    case_number,
    collapse,
    find_parcel_ids,
    parcel_ids,
    parse_acreage,
    parse_datetime,
    status_class,
)
from zoningsync.cases.options import DATE_FIELDS, CaseOptions, FieldSpec

MISSING_KEY = "missing_key"
INVALID = "invalid"
_TEXT_FIELDS = ("title", "case_type", "status", "from_zoning", "to_zoning", "address",
                "applicant", "detail_url", "document_url", "document_sha256")


@dataclass(frozen=True)
class CaseRejection:
    """A would-be case that cannot be stored; `raw` is JSON-ready for the quarantine row."""

    reason: str
    detail: str
    raw: Mapping[str, Any] = field(default_factory=dict)


def pattern_values(spec: FieldSpec, text: str | None) -> dict[str, str | None]:
    """The field's value by its pattern, plus every other named group of the match.

    The value is the group named like the field, else the first group, else the
    whole match; no match gives None for the field and nothing else.
    """
    if spec.pattern is None:
        return {spec.name: text}
    match = spec.pattern.search(text) if text is not None else None
    if match is None:
        return {spec.name: None}
    values: dict[str, str | None] = {
        name: collapse(value) for name, value in match.groupdict().items() if name != spec.name
    }
    if spec.name in spec.pattern.groupindex:
        own = match.group(spec.name)
    elif spec.pattern.groups:
        own = match.group(1)
    else:
        own = match.group(0)
    values[spec.name] = collapse(own)
    return values


def merge_located(found: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Fill `found` with the extra named groups of one field's pattern.

    A field located by its own spec wins over a group of another field's pattern.
    """
    for name, value in extra.items():
        if value is not None and found.get(name) is None:
            found[name] = value


def passes_filters(values: Mapping[str, Any], options: CaseOptions) -> bool:
    """True when every `[feeds.filter]` regex matches its field's text (absent never matches)."""
    for name, pattern in options.filters.items():
        text = _text(values.get(name))
        if text is None or not pattern.search(text):
            return False
    return True


def build_case(
    values: Mapping[str, Any],
    options: CaseOptions,
    *,
    text: str | None = None,
    document_url: str | None = None,
    document_sha256: str | None = None,
    pages: Sequence[int] = (),
) -> CaseRecord | CaseRejection:
    """The case these raw values describe; `text` is where parcel ids are searched for."""
    number = case_number(_text(values.get("case_number")))
    if number is None:
        return CaseRejection(MISSING_KEY, "no case_number found", json_ready(dict(values)))
    attrs: dict[str, Any] = {}
    converted: dict[str, Any] = {name: _text(values.get(name)) for name in _TEXT_FIELDS}
    converted["document_url"] = converted["document_url"] or document_url
    converted["document_sha256"] = converted["document_sha256"] or document_sha256
    for name in DATE_FIELDS:
        converted[name] = _date(name, values.get(name), options, attrs)
    converted["acreage"] = parse_acreage(values.get("acreage"))
    converted["parcel_ids"] = _parcel_ids(values, options, text)
    try:
        converted["pages"] = tuple(sorted({int(p) for p in (values.get("pages") or pages)}))
    except (TypeError, ValueError):
        return CaseRejection(INVALID, "pages must be page numbers", json_ready(dict(values)))
    for name, value in values.items():
        if name not in CASE_FIELDS and value is not None:
            attrs[name] = json_ready(value)
    return CaseRecord(
        case_number=number,
        status_class=status_class(converted["status"], options.status_map),
        attrs=attrs,
        **converted,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return collapse(", ".join(str(v) for v in value if v is not None))
    return collapse(str(value))


def _date(name: str, value: Any, options: CaseOptions, attrs: dict[str, Any]) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = _text(value)
    spec = options.fields.get(name)
    parsed = parse_datetime(text, (spec.format if spec else None) or options.date_format)
    if parsed is None and text is not None:
        attrs[f"{name}_text"] = text
    return parsed


def _parcel_ids(values: Mapping[str, Any], options: CaseOptions,
                text: str | None) -> tuple[str, ...]:
    pattern = options.parcel_id_pattern
    if "parcel_ids" in values:
        spec = options.fields.get("parcel_ids")
        return parcel_ids(values["parcel_ids"], pattern, spec.split if spec else None)
    if pattern is not None:
        return find_parcel_ids(text, pattern)
    return ()


def json_ready(value: Any) -> Any:
    """A value orjson stores the same way every time: texts collapsed, dates as ISO."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        return collapse(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    return collapse(str(value))


@dataclass(frozen=True)
class CaseRow:
    """One case as a reader found it, before conversion.

    `text` is the case's whole text (where parcel ids are searched for when no
    field names them); the URLs are absolute.
    """

    values: Mapping[str, Any]
    text: str | None = None
    detail_url: str | None = None
    document_urls: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    document_url: str | None = None
    document_sha256: str | None = None


@dataclass(frozen=True)
class CaseBatch:
    """What a batch of rows gave: cases, rejections, and how many the filter dropped."""

    cases: tuple[CaseRecord, ...] = ()
    rejected: tuple[CaseRejection, ...] = ()
    filtered_out: int = 0


def finish_cases(rows: Sequence[CaseRow], options: CaseOptions) -> CaseBatch:
    """Filter, convert and validate rows into cases (in their order)."""
    cases: list[CaseRecord] = []
    rejected: list[CaseRejection] = []
    filtered = 0
    for row in rows:
        values = dict(row.values)
        if values.get("detail_url") is None and row.detail_url is not None:
            values["detail_url"] = row.detail_url
        if not passes_filters(values, options):
            filtered += 1
            continue
        built = build_case(
            values, options, text=row.text,
            document_url=row.document_url or next(iter(row.document_urls), None),
            document_sha256=row.document_sha256, pages=row.pages,
        )
        if isinstance(built, CaseRejection):
            rejected.append(built)
        else:
            cases.append(built)
    return CaseBatch(tuple(cases), tuple(rejected), filtered)
