"""One page through the geometry stage: keys, CRS, geometry, chunk, hash.

The pipeline runs `prepare_fetched` in its thread pool (this module imports
neither asyncpg nor aiohttp). Every record leaves as a ReadyRow or as a Rejected
with a reason and a detail, never as an exception: one bad record must not cost
its page. The fast path handles a page at a time; only when a page-wide step
raises (a hostile record it cannot read or build) is that step redone record by
record, to quarantine the culprits and keep the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import shapely

from zoningsync.chunks import canonical_json, chunks_of, row_hash_of_json
from zoningsync.crs import ToLonLat, UnknownCrs, to_lonlat
from zoningsync.geometry import UNREADABLE, Built, Shape, build_multipolygons, read_shapes
from zoningsync.records import (
    WGS84,
    CrsSpec,
    FetchedPage,
    JsonText,
    Page,
    PreparedPage,
    QuarantineReason,
    RawJson,
    ReadyRow,
    Rejected,
    SourceRecord,
)

# A rejected record's raw value shown as text (it could not be stored as JSON) is
# cut to this many characters.
RAW_TEXT_CHARS = 10_000
_BUILD_ERRORS = (shapely.errors.GEOSException, *UNREADABLE)


def prepare_fetched(page: FetchedPage, *, h3_resolution: int) -> PreparedPage:
    """Read a fetched page's records and prepare them: the pipeline's thread-pool call."""
    try:
        return prepare_page(page.read(), h3_resolution=h3_resolution)
    except UNREADABLE:
        pass
    records, unreadable = _read_one_by_one(page)
    prepared = prepare_page(Page(page.page_id, records, page.crs, page.geometry_format),
                            h3_resolution=h3_resolution)
    prepared.rejected.extend(unreadable)
    return prepared


def _read_one_by_one(page: FetchedPage) -> tuple[list[SourceRecord], list[Rejected]]:
    """The page's records, each read alone; those that cannot be read, as rejections."""
    records: list[SourceRecord] = []
    unreadable: list[Rejected] = []
    for feature in page.features:
        try:
            records.extend(page.read_records([feature]))
        except UNREADABLE as exc:
            unreadable.append(Rejected(
                None, None, QuarantineReason.PARSE_ERROR,
                f"the record cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                _storable(feature)))
    return records, unreadable


def prepare_page(page: Page, *, h3_resolution: int) -> PreparedPage:
    """Parse, reproject to EPSG:4326, validate/repair, promote to MultiPolygon, assign H3
    chunk, hash; reject with reasons.

    `len(rows) + len(rejected) == len(page.records)` always holds.
    """
    prepared = PreparedPage(page.page_id)

    def reject(record: SourceRecord, reason: QuarantineReason, detail: str) -> None:
        prepared.rejected.append(
            Rejected(record.source_key, record.oid, reason, detail, record.raw))

    transform, crs_problem = _page_transform(page)
    readable: list[SourceRecord] = []
    for record in page.records:
        if not record.source_key:
            reject(record, QuarantineReason.MISSING_KEY, "the record has no value in its key field")
        elif crs_problem:
            reject(record, QuarantineReason.UNKNOWN_CRS, crs_problem)
        else:
            readable.append(record)
    shapes: list[Shape] = []
    owners: list[SourceRecord] = []
    read = read_shapes([record.geometry for record in readable], page.geometry_format)
    for record, shape in zip(readable, read, strict=True):
        if isinstance(shape, Shape):
            shapes.append(shape)
            owners.append(record)
        else:
            reject(record, *shape)
    if not shapes:
        return _with_storable_raws(prepared)

    try:
        built = build_multipolygons(shapes, transform)
    except _BUILD_ERRORS:
        built = _built_one_by_one(shapes, transform)
    for index, (reason, detail) in sorted(built.problems.items()):
        reject(owners[index], reason, detail)
    stored = np.flatnonzero(~shapely.is_missing(built.geoms))
    geoms = built.geoms[stored]
    wkbs = shapely.to_wkb(geoms, hex=False, output_dimension=2, byte_order=1)
    points = shapely.point_on_surface(geoms)
    chunks = chunks_of(shapely.get_x(points).tolist(), shapely.get_y(points).tolist(),
                       h3_resolution)
    rows = prepared.rows
    for index, wkb, chunk in zip(stored.tolist(), wkbs.tolist(), chunks, strict=True):
        record = owners[index]
        try:
            attrs_json = canonical_json(record.attrs)
        except orjson.JSONEncodeError as exc:
            reject(record, QuarantineReason.PARSE_ERROR, f"attributes are not JSON-ready: {exc}")
            built.repaired[index] = False  # rejected, so not counted as repaired
            continue
        fields = record.fields
        rows.append(ReadyRow(str(record.source_key), record.oid, chunk, fields,
                             JsonText(attrs_json), record.edited_at, wkb,
                             row_hash_of_json(fields, attrs_json, wkb)))
    prepared.repaired = int(np.count_nonzero(built.repaired[stored]))
    return _with_storable_raws(prepared)


def _built_one_by_one(shapes: Sequence[Shape], transform: ToLonLat | None) -> Built:
    """`build_multipolygons` shape by shape, after the page-wide call raised."""
    built = Built(np.full(len(shapes), None, dtype=object), {},
                  np.zeros(len(shapes), dtype=bool))
    for index, shape in enumerate(shapes):
        try:
            alone = build_multipolygons([shape], transform)
        except _BUILD_ERRORS as exc:
            built.problems[index] = (QuarantineReason.UNREPAIRABLE_GEOMETRY,
                                     f"the geometry cannot be built "
                                     f"({type(exc).__name__}: {str(exc)[:200]})")
            continue
        built.geoms[index] = alone.geoms[0]
        built.repaired[index] = alone.repaired[0]
        if 0 in alone.problems:
            built.problems[index] = alone.problems[0]
    return built


def _with_storable_raws(prepared: PreparedPage) -> PreparedPage:
    """Make sure every rejected record's raw value can be stored as JSON.

    A hostile record may nest deeper than a JSON encoder or PostgreSQL accepts;
    the page's rejections are checked at once and, only if that fails, one by one.
    """
    if prepared.rejected and not _json_ready([r.raw for r in prepared.rejected]):
        for rejected in prepared.rejected:
            rejected.raw = _storable(rejected.raw)
    return prepared


def _storable(raw: Any) -> Mapping[str, Any]:
    """`raw` if it can be stored as JSON; else its members that can, the rest as text."""
    if isinstance(raw, Mapping) and _json_ready(raw):
        return raw
    if not isinstance(raw, Mapping):
        return {"unreadable": _as_text(raw)}
    return {str(name): value if _json_ready(value) else _as_text(value)
            for name, value in raw.items()}


def _json_ready(value: Any) -> bool:
    try:
        orjson.loads(orjson.dumps(value, default=_fragment, option=orjson.OPT_NON_STR_KEYS))
    except (orjson.JSONEncodeError, orjson.JSONDecodeError, RecursionError):
        return False
    return True


def _fragment(value: Any) -> Any:
    return orjson.Fragment(bytes(value)) if isinstance(value, RawJson) else str(value)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        text = value[:RAW_TEXT_CHARS].decode("utf-8", "replace")
    else:
        text = f"a {type(value).__name__} nested too deep to store as JSON"
    return text[:RAW_TEXT_CHARS]


def _page_transform(page: Page) -> tuple[ToLonLat | None, str]:
    """The page's way to lon/lat, or why there is none (GeoJSON defaults to WGS 84)."""
    crs: CrsSpec | None = page.crs
    if crs is None:
        if page.geometry_format != "geojson":
            return None, "the page gives no spatial reference"
        crs = WGS84
    try:
        return to_lonlat(crs), ""
    except UnknownCrs as exc:
        return None, exc.message
