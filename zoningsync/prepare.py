"""One page through the geometry stage: keys, CRS, geometry, chunk, hash.

The pipeline runs `prepare_fetched` in its thread pool (this module imports
neither asyncpg nor aiohttp). Every record leaves as a ReadyRow or as a Rejected
with a reason and a detail, never as an exception: one bad record must not cost
its page.
"""

from __future__ import annotations

import numpy as np
import orjson
import shapely

from zoningsync.chunks import canonical_json, chunks_of, row_hash_of_json
from zoningsync.crs import ToLonLat, UnknownCrs, to_lonlat
from zoningsync.geometry import Shape, build_multipolygons, read_shapes
from zoningsync.records import (
    WGS84,
    CrsSpec,
    FetchedPage,
    JsonText,
    Page,
    PreparedPage,
    QuarantineReason,
    ReadyRow,
    Rejected,
    SourceRecord,
)


def prepare_fetched(page: FetchedPage, *, h3_resolution: int) -> PreparedPage:
    """Read a fetched page's records and prepare them: the pipeline's thread-pool call."""
    return prepare_page(page.read(), h3_resolution=h3_resolution)


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
        return prepared

    built = build_multipolygons(shapes, transform)
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
    return prepared


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
