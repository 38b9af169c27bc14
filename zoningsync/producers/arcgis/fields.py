"""Upstream attribute values, normalized by their declared ArcGIS field types.

Values are kept exactly: integers stay Python ints whatever their declared width
(servers declare 13-digit epoch dates as 32-bit integers), doubles stay floats.
Dates become ISO-8601 UTC text in `attrs` and aware datetimes for the edit date.
Strings lose trailing blanks (fixed-width CHAR columns pad them); nulls stay null.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from zoningsync.records import SourceRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DATE = "esriFieldTypeDate"
TIMESTAMP_OFFSET = "esriFieldTypeTimestampOffset"
GEOMETRY = "esriFieldTypeGeometry"
# A field a record does not have, as opposed to one it has as null.
_ABSENT: Any = object()
# Epoch milliseconds whose year numpy and strftime both write with four digits.
FOUR_DIGIT_YEARS_MS = (-30_610_224_000_000, 253_402_300_799_999)


def datetime_from_epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        return None


def iso_utc(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def iso_from_epoch_ms(value: int) -> str | None:
    """ISO-8601 UTC text of an integral epoch-ms date; the hot path of every page.

    `time.gmtime` formats in C, several times faster than building a datetime, and
    a parcel layer carries a few dates on each of its rows.
    """
    seconds, millis = divmod(value, 1000)
    try:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return None
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def iso_dates(values: Sequence[Any]) -> list[Any]:
    """`normalize_value(v, DATE)` for a whole column of a page, in one numpy pass.

    Formatting dates one by one was the largest part of building a page's records
    (3.5 µs each, several per parcel); numpy formats the column in C. Values it
    cannot take (nulls, floats, years outside 1000-9999) go the one-by-one way.
    """
    low, high = FOUR_DIGIT_YEARS_MS
    out = list(values)
    rows = [i for i, v in enumerate(values) if type(v) is int and low <= v <= high]
    if rows:
        millis = np.fromiter((values[i] for i in rows), dtype=np.int64, count=len(rows))
        seconds, fraction = np.divmod(millis, 1000)
        texts = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").tolist()
        for i, text, ms in zip(rows, texts, fraction.tolist(), strict=True):
            out[i] = f"{text}.{ms:03d}Z" if ms else f"{text}Z"
    if len(rows) < len(values):
        done = set(rows)
        for i, value in enumerate(values):
            if i not in done:
                out[i] = normalize_value(value, DATE)
    return out


def normalize_value(value: Any, field_type: str | None) -> Any:
    if value is None:
        return None
    if field_type == DATE:
        if type(value) is int:
            fast = iso_from_epoch_ms(value)
            if fast is not None and fast[0] != "-" and len(fast) >= 20:
                return fast
        moment = datetime_from_epoch_ms(value)
        return iso_utc(moment) if moment is not None else value
    if field_type == TIMESTAMP_OFFSET and isinstance(value, str):
        try:
            return iso_utc(datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, str):
        return value.rstrip(" ")
    return value


class FieldMap:
    """Turns the features of one page into SourceRecords for one feed.

    Built column by column rather than feature by feature: each upstream field is
    normalized in one pass over the page (dates in one numpy call, strings trimmed
    in one comprehension), and each record's dicts are then zipped from the
    columns. Per-feature normalization was a fifth of a first load's Python time,
    and the client's Python is what a first load waits on.
    """

    def __init__(self, *, field_types: Mapping[str, str], oid_field: str,
                 canonical: Mapping[str, str], key: tuple[str, ...],
                 edit_date_field: str | None) -> None:
        self.field_types = field_types
        self.oid_field = oid_field
        self.canonical = dict(canonical)
        self.key = key
        self.edit_date_field = edit_date_field
        self._left_out = {oid_field, *canonical.values(),
                          *(name for name, kind in field_types.items() if kind == GEOMETRY)}

    def source_key(self, attributes: Mapping[str, Any]) -> str | None:
        return self._key_of([normalize_value(attributes.get(name), self.field_types.get(name))
                             for name in self.key])

    def _key_of(self, values: Sequence[Any]) -> str | None:
        if any(v is None or v == "" for v in values):
            return None
        if len(values) == 1:  # the usual case, on every record of every page
            return str(values[0])
        return orjson.dumps(values).decode()

    def records(self, features: Sequence[Mapping[str, Any]]) -> list[SourceRecord]:
        rows: list[Mapping[str, Any]] = [
            f.get("attributes") or f.get("properties") or {} for f in features]
        if not rows:
            return []
        first = rows[0].keys()
        uniform = all(row.keys() == first for row in rows)
        names = list(first) if uniform else list(dict.fromkeys(n for row in rows for n in row))
        columns = {name: self._normalized(name, [row.get(name, _ABSENT) for row in rows])
                   for name in names}
        absent = [_ABSENT] * len(rows)

        def given(name: str) -> list[Any]:
            """A column with absent values as nulls, as canonical columns and keys read them."""
            column = columns.get(name, absent)
            return column if uniform and name in columns else [
                None if v is _ABSENT else v for v in column]

        canonical_names = list(self.canonical)
        fields = [dict(zip(canonical_names, values, strict=True)) for values in zip(
            *([None if v is None else str(v) for v in given(upstream)]
              for upstream in self.canonical.values()), strict=True)
        ] if canonical_names else [{} for _ in rows]
        keys = [self._key_of(values)
                for values in zip(*(given(name) for name in self.key), strict=True)]
        attrs = self._attrs(columns, names, uniform, len(rows))
        oids = [row.get(self.oid_field, feature.get("id"))
                for feature, row in zip(features, rows, strict=True)]
        edits: list[Any] = (
            [datetime_from_epoch_ms(row.get(self.edit_date_field)) for row in rows]
            if self.edit_date_field is not None else [None] * len(rows))
        return [
            # a bool is not an object id
            SourceRecord(oid if type(oid) is int else None, key, row_fields, row_attrs,
                         feature.get("geometry"), feature, edited_at)
            for feature, oid, key, row_fields, row_attrs, edited_at in zip(
                features, oids, keys, fields, attrs, edits, strict=True)
        ]

    def _normalized(self, name: str, values: list[Any]) -> list[Any]:
        """`normalize_value` over a column; absent values stay absent."""
        kind = self.field_types.get(name)
        if kind == DATE:
            return iso_dates(values)
        if kind == TIMESTAMP_OFFSET:
            return [normalize_value(v, TIMESTAMP_OFFSET) for v in values]
        return [v.rstrip(" ") if v.__class__ is str else v for v in values]

    def _attrs(self, columns: Mapping[str, list[Any]], names: Sequence[str], uniform: bool,
               count: int) -> list[dict[str, Any]]:
        """Each record's unmapped fields: those it has, minus the OID, key and geometry."""
        kept = [name for name in names if name not in self._left_out]
        if not kept:
            return [{} for _ in range(count)]
        rows = zip(*(columns[name] for name in kept), strict=True)
        if uniform:
            return [dict(zip(kept, values, strict=True)) for values in rows]
        return [{name: v for name, v in zip(kept, values, strict=True) if v is not _ABSENT}
                for values in rows]
