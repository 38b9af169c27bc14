"""The records that flow one way through a feed run.

producer ─► `FetchedPage` ─► read as a `Page` of `SourceRecord` and prepared
(one thread-pool call) ─► `PreparedPage` of `ReadyRow` and `Rejected` ─► store.

These types are plain data: producers build them knowing nothing of the database,
and the store consumes them knowing nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class Kind(StrEnum):
    PARCELS = "parcels"
    ZONING_DISTRICTS = "zoning_districts"
    CASES = "cases"


class QuarantineReason(StrEnum):
    """Why a record was not stored; the value is what `quarantine.reason` holds."""

    NULL_GEOMETRY = "null_geometry"
    UNREPAIRABLE_GEOMETRY = "unrepairable_geometry"
    NON_POLYGONAL = "non_polygonal_geometry"
    OUT_OF_RANGE = "coordinates_out_of_range"
    UNSUPPORTED_CURVE = "unsupported_curve"
    UNKNOWN_CRS = "unknown_crs"
    MISSING_KEY = "missing_key"
    DUPLICATE_KEY = "duplicate_key"
    PARSE_ERROR = "parse_error"


# Canonical columns every parcels / zoning_districts feed may fill from upstream fields.
CANONICAL_FIELDS = ("parcel_id", "zoning_code", "zoning_desc", "address")

GeometryFormat = Literal["esrijson", "geojson"]


@dataclass(frozen=True, slots=True)
class CrsSpec:
    """A coordinate reference system as an upstream server describes it."""

    wkid: int | None = None
    latest_wkid: int | None = None
    wkt: str | None = None

    @classmethod
    def from_esri(cls, spatial_reference: Any) -> CrsSpec | None:
        """The CRS an Esri `spatialReference` names; None when it names none readably.

        Servers send what they like here (a wkid as text, a list, 1e300): a code
        that is not a whole number in range counts as absent, so a page that
        gives no other is quarantined as an unknown CRS instead of failing.
        """
        if not isinstance(spatial_reference, Mapping) or not spatial_reference:
            return None
        wkid = _epsg_code(spatial_reference.get("wkid"))
        latest = _epsg_code(spatial_reference.get("latestWkid"))
        wkt = spatial_reference.get("wkt")
        wkt = wkt if isinstance(wkt, str) and wkt else None
        if wkid is None and latest is None and wkt is None:
            return None
        return cls(wkid=wkid, latest_wkid=latest, wkt=wkt)


def _epsg_code(value: Any) -> int | None:
    """A wkid as the whole number it should be (servers also send "2264" or 2264.0)."""
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9
    if digits or (isinstance(value, float) and value.is_integer() and abs(value) < 2**31):
        value = int(value)
    if type(value) is int and 0 < value < 2**31:
        return value
    return None


WGS84 = CrsSpec(wkid=4326, latest_wkid=4326)


@dataclass(slots=True)
class SourceRecord:
    """One upstream feature with its attributes already normalized.

    `fields` holds the canonical columns (text or None); `attrs` every other upstream
    field, JSON-ready (dates as ISO-8601 UTC strings). `geometry` is the raw upstream
    geometry in the page's `geometry_format`, decoded or as its JSON text; `raw` is
    the record as received, kept for quarantine.
    """

    oid: int | None
    source_key: str | None
    fields: dict[str, str | None]
    attrs: dict[str, Any]
    geometry: Mapping[str, Any] | RawJson | None
    raw: Mapping[str, Any]
    edited_at: datetime | None = None


@dataclass(slots=True)
class Page:
    """A batch of records as one request returned them.

    `page_id` names the request within the run's fetch plan, so a resumed run knows
    which pages it already staged.
    """

    page_id: str
    records: list[SourceRecord]
    crs: CrsSpec | None
    geometry_format: GeometryFormat = "esrijson"


RecordReader = Callable[[Sequence[Mapping[str, Any]]], list[SourceRecord]]


@dataclass(slots=True)
class FetchedPage:
    """A page as its answer came: features, and the producer's way to read them.

    The pipeline reads the records in the same thread-pool call as the geometry
    stage, so one thread walks a page's freshly parsed objects while they are
    still in its cache: reading them on a thread of their own first cost a 100k
    first load 1-4% more CPU and wall time (interleaved pairs).
    """

    page_id: str
    features: Sequence[Mapping[str, Any]]
    crs: CrsSpec | None
    read_records: RecordReader
    geometry_format: GeometryFormat = "esrijson"

    def read(self) -> Page:
        return Page(self.page_id, self.read_records(self.features), self.crs,
                    self.geometry_format)


class RawJson(bytes):
    """The JSON text of one upstream value, decoded where it is used (a geometry)."""

    __slots__ = ()


class JsonText(bytes):
    """A JSON document already encoded: the store sends it to jsonb as it is."""

    __slots__ = ()


@dataclass(slots=True)
class ReadyRow:
    """A record that passed the geometry stage, ready to stage in PostgreSQL.

    `attrs_json` is the attributes' canonical JSON, encoded once for the row hash
    and the store.
    """

    source_key: str
    oid: int | None
    chunk: str
    fields: dict[str, str | None]
    attrs_json: JsonText
    edited_at: datetime | None
    wkb: bytes
    row_hash: bytes


@dataclass(slots=True)
class Rejected:
    """A record that goes to quarantine, with the reason and a human-readable detail."""

    source_key: str | None
    oid: int | None
    reason: QuarantineReason
    detail: str
    raw: Mapping[str, Any]


@dataclass(slots=True)
class PreparedPage:
    page_id: str
    rows: list[ReadyRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    repaired: int = 0
