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
from itertools import repeat
from typing import TYPE_CHECKING, Any

import orjson

from zoningsync.records import SourceRecord

if TYPE_CHECKING:
    import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DATE = "esriFieldTypeDate"
TIMESTAMP_OFFSET = "esriFieldTypeTimestampOffset"
GEOMETRY = "esriFieldTypeGeometry"
# Epoch milliseconds whose year numpy and strftime both write with four digits.
FOUR_DIGIT_YEARS_MS = (-30_610_224_000_000, 253_402_300_799_999)
EXACT_FLOAT_MS = 2**31 * 1000


def datetime_from_epoch_ms(value: Any) -> datetime | None:
    """The aware UTC datetime of epoch milliseconds: every record's edit date.

    Where the seconds fit 32 bits (1901-2038), a double holds `value / 1000` within
    a quarter microsecond, so `fromtimestamp` rounds to the exact millisecond in one
    C call: 0.5 µs against 1.1 µs for the sum below, which takes the rest.
    """
    if type(value) is int and -EXACT_FLOAT_MS < value < EXACT_FLOAT_MS:
        return datetime.fromtimestamp(value / 1000, UTC)
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
    import numpy as np  # in the prepare pool: kept off the start-up path (sync.py)

    low, high = FOUR_DIGIT_YEARS_MS
    if values and set(map(type, values)) == {int}:  # a column of dates, none missing
        try:
            millis = np.array(values, dtype=np.int64)
        except OverflowError:
            pass
        else:
            if low <= millis.min() and millis.max() <= high:
                return _iso_texts(millis)
    out = list(values)
    rows = [i for i, v in enumerate(values) if type(v) is int and low <= v <= high]
    if rows:
        texts = _iso_texts(np.fromiter((values[i] for i in rows), dtype=np.int64,
                                       count=len(rows)))
        for i, text in zip(rows, texts, strict=True):
            out[i] = text
    if len(rows) < len(values):
        done = set(rows)
        for i, value in enumerate(values):
            if i not in done:
                out[i] = normalize_value(value, DATE)
    return out


def _iso_texts(millis: np.ndarray[Any, np.dtype[np.int64]]) -> list[Any]:
    """ISO-8601 UTC texts of epoch milliseconds, whole seconds without a fraction,
    formatted by numpy for the whole column (an f-string per value took as long)."""
    import numpy as np  # in the prepare pool: kept off the start-up path (sync.py)

    moments = millis.astype("datetime64[ms]")
    texts = np.datetime_as_string(moments, unit="ms", timezone="UTC")
    whole = millis % 1000 == 0
    if whole.any():
        texts[whole] = np.datetime_as_string(moments[whole], unit="s", timezone="UTC")
    listed: list[Any] = texts.tolist()
    return listed


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

    Built page-wide rather than feature by feature: date columns are formatted in
    one numpy call each, and every other value takes the shortest path its declared
    type allows (strings are trimmed, numbers and nulls kept as they are). A page
    whose records all hold the same fields (what a layer answers) is read column
    by column, each column in one comprehension and each record's dicts zipped
    together from them; a page of mixed records is read record by record.
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
        self._dates = tuple(name for name, kind in field_types.items() if kind == DATE)
        self._offsets = {name for name, kind in field_types.items() if kind == TIMESTAMP_OFFSET}

    def source_key(self, attributes: Mapping[str, Any]) -> str | None:
        if len(self.key) == 1:  # the usual case, on every record of every page
            name = self.key[0]
            value = normalize_value(attributes.get(name), self.field_types.get(name))
            return None if value is None or value == "" else str(value)
        values = [normalize_value(attributes.get(name), self.field_types.get(name))
                  for name in self.key]
        if any(v is None or v == "" for v in values):
            return None
        return orjson.dumps(values).decode()

    def records(self, features: Sequence[Mapping[str, Any]]) -> list[SourceRecord]:
        rows: list[Mapping[str, Any]] = [
            f.get("attributes") or f.get("properties") or {} for f in features]
        dates = {name: iso_dates([row.get(name) for row in rows]) for name in self._dates
                 if any(name in row for row in rows)}
        if rows and all(row.keys() == rows[0].keys() for row in rows):
            return self._by_columns(features, rows, dates)
        return [self._record(feature, row, index, dates)
                for index, (feature, row) in enumerate(zip(features, rows, strict=True))]

    def _by_columns(self, features: Sequence[Mapping[str, Any]],
                    rows: list[Mapping[str, Any]], dates: Mapping[str, list[Any]]
                    ) -> list[SourceRecord]:
        """`_record` of every record of a page whose records hold the same fields.

        Reading records one by one took 7 µs each, a tenth of a 100k first load's
        client CPU: most of it calls and per-field tests that a column pays once.
        """
        names = [name for name in rows[0] if name not in self._left_out]
        attrs: list[dict[str, Any]] = (
            [dict(zip(names, values, strict=True))
             for values in zip(*(self._attr_column(name, rows, dates) for name in names),
                               strict=True)]
            if names else [{} for _ in rows])
        canonical = list(self.canonical)
        fields: list[dict[str, str | None]] = (
            [dict(zip(canonical, values, strict=True))
             for values in zip(*(self._field_column(upstream, rows, dates)
                                 for upstream in self.canonical.values()), strict=True)]
            if canonical else [{} for _ in rows])
        oid_values = ([row[self.oid_field] for row in rows] if self.oid_field in rows[0]
                      else [feature.get("id") for feature in features])
        oids = [value if type(value) is int else None for value in oid_values]
        edit = self.edit_date_field
        edited = ([datetime_from_epoch_ms(row.get(edit)) for row in rows] if edit is not None
                  else [None] * len(rows))
        return [SourceRecord(oid, key, fields_of, attrs_of, feature.get("geometry"), feature,
                             edited_at)
                for oid, key, fields_of, attrs_of, feature, edited_at in zip(
                    oids, self._keys(rows), fields, attrs, features, edited, strict=True)]

    def _attr_column(self, name: str, rows: Sequence[Mapping[str, Any]],
                     dates: Mapping[str, list[Any]]) -> list[Any]:
        if name in dates:
            return dates[name]
        if name in self._offsets:
            return [normalize_value(row[name], TIMESTAMP_OFFSET) if row[name].__class__ is str
                    else row[name] for row in rows]
        column = [row[name] for row in rows]
        kinds = set(map(type, column))
        if str not in kinds:
            return column
        if kinds == {str}:
            return list(map(str.rstrip, column, repeat(" ")))
        return [value.rstrip(" ") if value.__class__ is str else value for value in column]

    def _field_column(self, upstream: str, rows: Sequence[Mapping[str, Any]],
                      dates: Mapping[str, list[Any]]) -> list[str | None]:
        field_type = self.field_types.get(upstream)
        if upstream in dates or field_type in (DATE, TIMESTAMP_OFFSET):
            values = (dates[upstream] if upstream in dates else
                      [normalize_value(row.get(upstream), field_type) for row in rows])
            return [None if value is None else str(value) for value in values]
        return [None if value is None else value.rstrip(" ") if isinstance(value, str)
                else str(value) for value in (row.get(upstream) for row in rows)]

    def _keys(self, rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """`source_key` of each row; a single key that is not a date in one comprehension."""
        if len(self.key) != 1 or self.field_types.get(self.key[0]) in (DATE, TIMESTAMP_OFFSET):
            return [self.source_key(row) for row in rows]
        name = self.key[0]
        return [None if value is None else (value.rstrip(" ") or None)
                if isinstance(value, str) else str(value)
                for value in (row.get(name) for row in rows)]

    def _record(self, feature: Mapping[str, Any], row: Mapping[str, Any], index: int,
                dates: Mapping[str, list[Any]]) -> SourceRecord:
        oid_value = row.get(self.oid_field, feature.get("id"))
        oid = oid_value if type(oid_value) is int else None  # a bool is not an object id
        fields: dict[str, str | None] = {}
        for canonical, upstream in self.canonical.items():
            value = (dates[upstream][index] if upstream in dates else
                     normalize_value(row.get(upstream), self.field_types.get(upstream)))
            fields[canonical] = None if value is None else str(value)
        attrs: dict[str, Any] = {}
        left_out, offsets = self._left_out, self._offsets
        for name, value in row.items():
            if name in left_out:
                continue
            if name in dates:
                attrs[name] = dates[name][index]
            elif value.__class__ is str:
                attrs[name] = (normalize_value(value, TIMESTAMP_OFFSET) if name in offsets
                               else value.rstrip(" "))
            else:
                attrs[name] = value
        edited_at = None
        if self.edit_date_field is not None:
            edited_at = datetime_from_epoch_ms(row.get(self.edit_date_field))
        return SourceRecord(
            oid=oid, source_key=self.source_key(row), fields=fields, attrs=attrs,
            geometry=feature.get("geometry"), raw=feature, edited_at=edited_at,
        )
