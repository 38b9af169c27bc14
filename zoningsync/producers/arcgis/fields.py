"""Upstream attribute values, normalized by their declared ArcGIS field types.

Values are kept exactly: integers stay Python ints whatever their declared width
(servers declare 13-digit epoch dates as 32-bit integers), doubles stay floats.
Dates become ISO-8601 UTC text in `attrs` and aware datetimes for the edit date.
Strings lose trailing blanks (fixed-width CHAR columns pad them); nulls stay null.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from zoningsync.records import SourceRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DATE = "esriFieldTypeDate"
TIMESTAMP_OFFSET = "esriFieldTypeTimestampOffset"
STRING = "esriFieldTypeString"
GEOMETRY = "esriFieldTypeGeometry"


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
    """Turns one upstream feature into a SourceRecord for one feed."""

    def __init__(self, *, field_types: Mapping[str, str], oid_field: str,
                 canonical: Mapping[str, str], key: tuple[str, ...],
                 edit_date_field: str | None) -> None:
        self.field_types = field_types
        self.oid_field = oid_field
        self.canonical = dict(canonical)
        self.key = key
        self.edit_date_field = edit_date_field
        self.mapped = set(canonical.values())

    def source_key(self, attributes: Mapping[str, Any]) -> str | None:
        if len(self.key) == 1:  # the usual case, on every record of every page
            name = self.key[0]
            value = normalize_value(attributes.get(name), self.field_types.get(name))
            return None if value is None or value == "" else str(value)
        values = [normalize_value(attributes.get(name), self.field_types.get(name))
                  for name in self.key]
        if any(v is None or v == "" for v in values):
            return None
        if len(values) == 1:
            return str(values[0])
        return orjson.dumps(values).decode()

    def records(self, features: Iterable[Mapping[str, Any]]) -> list[SourceRecord]:
        return [self.record(feature) for feature in features]

    def record(self, feature: Mapping[str, Any], geometry_key: str = "geometry"
               ) -> SourceRecord:
        attributes: Mapping[str, Any] = (feature.get("attributes")
                                         or feature.get("properties") or {})
        oid_value = attributes.get(self.oid_field, feature.get("id"))
        oid = oid_value if isinstance(oid_value, int) and not isinstance(oid_value, bool) else None
        fields: dict[str, str | None] = {}
        for canonical, upstream in self.canonical.items():
            value = normalize_value(attributes.get(upstream), self.field_types.get(upstream))
            fields[canonical] = None if value is None else str(value)
        attrs = {
            name: normalize_value(value, self.field_types.get(name))
            for name, value in attributes.items()
            if name != self.oid_field and name not in self.mapped
            and self.field_types.get(name) != GEOMETRY
        }
        edited_at = None
        if self.edit_date_field is not None:
            edited_at = datetime_from_epoch_ms(attributes.get(self.edit_date_field))
        return SourceRecord(
            oid=oid, source_key=self.source_key(attributes), fields=fields, attrs=attrs,
            geometry=feature.get(geometry_key), raw=feature, edited_at=edited_at,
        )
