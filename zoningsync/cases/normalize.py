"""Turning the texts a source publishes into the typed values of a case.

Every reader (HTML, PDF, Legistar, custom parsers) ends with a dict of raw
values; these functions are the one place those values become dates, numbers,
parcel ids and a status class, so two sources writing the same case the same
way always give the same `CaseRecord` (and the same row hash).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal

from zoningsync.cases.model import StatusClass

_BLANKS = re.compile(r"[\s\u00a0\u200b\ufeff]+")


def collapse(text: str | None) -> str | None:
    """Trim and collapse every run of blanks (incl. &nbsp;) to one space; empty → None."""
    if text is None:
        return None
    collapsed = _BLANKS.sub(" ", text).strip()
    return collapsed or None


def case_number(text: str | None) -> str | None:
    """The case key: trimmed, blanks collapsed, nothing else changed."""
    return collapse(text)


def status_key(text: str) -> str:
    """How status words are compared: whitespace-collapsed and case-insensitive."""
    return (collapse(text) or "").casefold()


# Checked in this order: "Withdrawn after denial" is a withdrawal, "Pending
# approval" is pending (the word `approval` is not a decision).
_STATUS_WORDS: tuple[tuple[StatusClass, re.Pattern[str]], ...] = (
    (StatusClass.WITHDRAWN, re.compile(
        r"\b(withdrawn|withdrew|dismissed|cancell?ed|terminated|void(ed)?|abandoned|expired)\b")),
    (StatusClass.DENIED, re.compile(
        r"\b(denied|deny|rejected|failed|disapproved|not approved|vetoed|defeated)\b")),
    (StatusClass.APPROVED, re.compile(
        r"\b(approved|adopted|passed|granted|enacted|ratified|final action|signed)\b")),
    (StatusClass.PENDING, re.compile(
        r"\b(pending|filed|scheduled|continued|under review|in review|submitted|tabled"
        r"|referred|hearing|received|introduced|open|active|in progress|deferred|postponed"
        r"|accepted|review|recommended|application|new|draft|on hold|held)\b")),
)


def status_class(status: str | None, status_map: Mapping[str, StatusClass]) -> StatusClass:
    """The feed's `status_map` first (whitespace- and case-insensitive), then common words."""
    if status is None:
        return StatusClass.UNKNOWN
    key = status_key(status)
    if not key:
        return StatusClass.UNKNOWN
    if key in status_map:
        return status_map[key]
    for klass, words in _STATUS_WORDS:
        if words.search(key):
            return klass
    return StatusClass.UNKNOWN


_WEEKDAY = re.compile(
    r"^(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?\s+", re.IGNORECASE)
_MONTHS = {
    name: number
    for number, names in enumerate(
        (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")),
        start=1)
    for name in names
}
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/-](\d{1,2})[/-](\d{4}|\d{2})\b")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NAMED_DATE = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_TIME = re.compile(
    r"(?<![\d:])(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?"
    r"|(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])",
    re.IGNORECASE)


def parse_datetime(text: str | None, fmt: str | None = None) -> datetime | None:
    """An aware UTC datetime, or None when the text holds no date.

    `fmt` (a strptime format) is tried first; then the common US forms:
    `03/05/2024`, `3/5/24`, `March 5, 2024`, `Mar. 5 2024`, ISO, with a weekday
    before and a time after tolerated. A date without a time is midnight UTC;
    a naive time is taken as UTC (sources rarely say their zone).
    """
    value = collapse(text)
    if value is None:
        return None
    if fmt is not None:
        try:
            return _as_utc(datetime.strptime(value, fmt))
        except ValueError:
            pass
    try:
        return _as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        pass
    value = _WEEKDAY.sub("", value)
    found = _find_date(value)
    if found is None:
        return None
    day, rest = found
    return datetime.combine(day, _find_time(rest) or time(), tzinfo=UTC)


def _find_date(value: str) -> tuple[date, str] | None:
    for pattern, order in ((_ISO_DATE, "ymd"), (_NUMERIC_DATE, "mdy"), (_NAMED_DATE, "Mdy")):
        match = pattern.search(value)
        if match is None:
            continue
        parts = dict(zip(order, match.groups(), strict=True))
        month = _MONTHS.get(parts["M"].casefold()) if "M" in parts else int(parts["m"])
        year = int(parts["y"])
        if year < 100:
            year += 2000 if year < 70 else 1900
        try:
            return date(year, month or 0, int(parts["d"])), value[match.end():]
        except ValueError:
            continue
    return None


def _find_time(rest: str) -> time | None:
    match = _TIME.search(rest)
    if match is None:
        return None
    if match.group(4) is not None:
        hours = int(match.group(1))
        if not 1 <= hours <= 12:
            return None
        hours = hours % 12 + (12 if match.group(4).casefold() == "p" else 0)
        minute, second = match.group(2), match.group(3)
    else:
        hours, minute, second = int(match.group(5)), match.group(6), match.group(7)
    try:
        return time(hours, int(minute or 0), int(second or 0))
    except ValueError:
        return None


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")
_SQUARE_FEET = re.compile(r"(?i)\b(sq\.?\s*f(ee)?t|square\s+f(ee|oo)t|s\.?f\.?)\b")
SQUARE_FEET_PER_ACRE = 43_560


def parse_acreage(value: object) -> float | None:
    """Acres from "12.5 acres", "12.5 ac", "±3", "1,200 sq ft"; None when no number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    text = collapse(str(value))
    if text is None:
        return None
    match = _NUMBER.search(text)
    if match is None:
        return None
    number = float(match.group(0).replace(",", ""))
    if _SQUARE_FEET.search(text):
        return round(number / SQUARE_FEET_PER_ACRE, 4)
    return number


def parcel_ids(
    values: object,
    pattern: re.Pattern[str] | None,
    split: re.Pattern[str] | None = None,
) -> tuple[str, ...]:
    """Parcel ids, each one normalized, in order, without repeats.

    With the jurisdiction's pattern each id is the pattern's match (searched
    case-insensitively, then upper-cased and blank-trimmed), so `1234-a-00001 `
    and `1234-A-00001` are one parcel; without it, the split items trimmed.
    """
    items: list[str] = []
    raw = [values] if isinstance(values, str) else list(values or ())  # type: ignore[call-overload]
    for item in raw:
        if item is None:
            continue
        text = str(item)
        if pattern is not None:
            items.extend(m.group(0) for m in pattern.finditer(text))
        elif split is not None:
            items.extend(split.split(text))
        else:
            items.append(text)
    seen: dict[str, None] = {}
    for item in items:
        normalized = collapse(item)
        if normalized is not None:
            seen.setdefault(normalized.upper() if pattern is not None else normalized, None)
    return tuple(seen)


def find_parcel_ids(text: str | None, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Every id the jurisdiction's pattern finds in a case's text."""
    return parcel_ids([text] if text else [], pattern)
