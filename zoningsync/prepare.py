"""One page through the geometry stage: parse, reproject, repair, chunk, hash.

Runs in the thread pool (it imports neither asyncpg nor aiohttp). Esri rings are
assembled by containment: clockwise rings are outer rings, counter-clockwise
rings are holes of the smallest outer ring containing them, and a ring inside
no outer ring is an outer ring whatever its orientation: no ring is dropped.
Every record leaves as a ReadyRow or a Rejected with a reason, never an error.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import h3
import numpy as np
import orjson
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from zoningsync.records import (
    CrsSpec,
    Page,
    PreparedPage,
    QuarantineReason,
    ReadyRow,
    Rejected,
    SourceRecord,
)

PRECISION_DIGITS = 7  # coordinates are kept to 1e-7 degrees, about 1 cm
SHAPELY_POLYGON = 3  # shapely.get_type_id of a Polygon
ARC_SEGMENTS = 32
_local = threading.local()


class GeometryRejected(Exception):
    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# -- hashing and chunks -------------------------------------------------------------------


def row_hash(fields: Mapping[str, str | None], attrs: Mapping[str, Any], wkb: bytes) -> bytes:
    """Content hash: canonical attributes plus normalized WKB; never the upstream OID."""
    canonical = orjson.dumps({"fields": fields, "attrs": attrs},
                             option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(canonical + wkb, digest_size=16).digest()


def chunk_hash(row_hashes: Iterable[bytes]) -> bytes:
    """Equals PostgreSQL's sha256(string_agg(row_hash, '' ORDER BY row_hash))."""
    return hashlib.sha256(b"".join(sorted(row_hashes))).digest()


def chunk_of(lon: float, lat: float, resolution: int) -> str:
    return str(h3.latlng_to_cell(lat, lon, resolution))


# -- CRS ------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def resolve_crs(spec: CrsSpec) -> CRS:
    """latestWkid as EPSG, then wkid as EPSG, then as ESRI, then the WKT."""
    attempts: list[str] = []
    if spec.latest_wkid is not None:
        attempts.append(f"EPSG:{spec.latest_wkid}")
    if spec.wkid is not None:
        attempts += [f"EPSG:{spec.wkid}", f"ESRI:{spec.wkid}"]
    for code in attempts:
        try:
            return CRS.from_user_input(code)
        except CRSError:
            continue
    if spec.wkt:
        try:
            return CRS.from_wkt(spec.wkt)
        except CRSError:
            pass
    raise GeometryRejected(QuarantineReason.UNKNOWN_CRS, f"cannot resolve CRS {spec}")


def transformer_for(spec: CrsSpec) -> Transformer | None:
    """A per-thread cached transformer to EPSG:4326 (Transformers are not thread-safe)."""
    cache: dict[CrsSpec, Transformer | None] = getattr(_local, "transformers", None) or {}
    _local.transformers = cache
    if spec not in cache:
        source = resolve_crs(spec)
        cache[spec] = (None if source.to_epsg() == 4326 else
                       Transformer.from_crs(source, "EPSG:4326", always_xy=True))
    return cache[spec]


# -- Esri JSON and GeoJSON to shapely ---------------------------------------------------------


def _arc(start: Sequence[float], mid: Sequence[float], end: Sequence[float]
         ) -> list[tuple[float, float]]:
    """Points of the circular arc from start through mid to end (end included)."""
    (x1, y1), (x2, y2), (x3, y3) = start[:2], mid[:2], end[:2]
    d = 2 * (x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2))
    if abs(d) < 1e-12:
        return [(x3, y3)]
    ux = ((x1**2 + y1**2) * (y2 - y3) + (x2**2 + y2**2) * (y3 - y1)
          + (x3**2 + y3**2) * (y1 - y2)) / d
    uy = ((x1**2 + y1**2) * (x3 - x2) + (x2**2 + y2**2) * (x1 - x3)
          + (x3**2 + y3**2) * (x2 - x1)) / d
    radius = math.hypot(x1 - ux, y1 - uy)
    a1, a2, a3 = (math.atan2(y - uy, x - ux) for x, y in ((x1, y1), (x2, y2), (x3, y3)))
    sweep = (a3 - a1) % (2 * math.pi)
    if (a2 - a1) % (2 * math.pi) > sweep:  # the arc runs clockwise
        sweep -= 2 * math.pi
    return [(ux + radius * math.cos(a1 + sweep * i / ARC_SEGMENTS),
             uy + radius * math.sin(a1 + sweep * i / ARC_SEGMENTS))
            for i in range(1, ARC_SEGMENTS + 1)]


def _bezier(start: Sequence[float], c1: Sequence[float], c2: Sequence[float],
            end: Sequence[float]) -> list[tuple[float, float]]:
    points = []
    for i in range(1, ARC_SEGMENTS + 1):
        t = i / ARC_SEGMENTS
        u = 1 - t
        points.append(tuple(u**3 * start[k] + 3 * u * u * t * c1[k] + 3 * u * t * t * c2[k]
                            + t**3 * end[k] for k in (0, 1)))
    return points  # type: ignore[return-value]


def _curve_ring(ring: Sequence[Any]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for item in ring:
        if isinstance(item, dict):
            if not points:
                raise GeometryRejected(QuarantineReason.UNSUPPORTED_CURVE,
                                       "a curve segment starts a ring")
            if "c" in item:
                end, mid = item["c"]
                points.extend(_arc(points[-1], mid, end))
            elif "b" in item:
                end, c1, c2 = item["b"]
                points.extend(_bezier(points[-1], c1, c2, end))
            else:
                raise GeometryRejected(QuarantineReason.UNSUPPORTED_CURVE,
                                       f"curve segment kind {sorted(item)} is not supported")
        else:
            points.append((float(item[0]), float(item[1])))
    return points


def _signed_area(coords: np.ndarray[Any, Any]) -> float:
    x, y = coords[:, 0], coords[:, 1]
    return float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])) / 2


def _clean_ring(raw: Sequence[Any], index: int) -> np.ndarray[Any, Any] | str:
    """A closed 2-D ring as an array, or why it cannot bound an area."""
    points = [(float(p[0]), float(p[1])) for p in raw]
    distinct = len(set(points))
    if distinct < 3:
        return f"ring {index} has {distinct} distinct points"
    if points[0] != points[-1]:
        points.append(points[0])
    return np.asarray(points)


def esri_polygon(rings: Sequence[Sequence[Any]]) -> BaseGeometry:
    """Assemble Esri rings into a (Multi)Polygon by orientation and containment."""
    cleaned: list[np.ndarray[Any, Any]] = []
    problems: list[str] = []
    for index, ring in enumerate(rings):
        result = _clean_ring(ring, index)
        if isinstance(result, str):
            problems.append(result)
        else:
            cleaned.append(result)
    if not cleaned:
        raise GeometryRejected(QuarantineReason.UNREPAIRABLE_GEOMETRY,
                               "; ".join(problems) or "no rings")
    if len(cleaned) == 1:
        return Polygon(cleaned[0])
    outers = [c for c in cleaned if _signed_area(c) <= 0]  # clockwise (or flat)
    holes = [c for c in cleaned if _signed_area(c) > 0]
    shells = [Polygon(c) for c in outers]
    assigned: list[list[np.ndarray[Any, Any]]] = [[] for _ in outers]
    for hole in holes:
        point = shapely.Point(hole[0])
        containing = [i for i, shell in enumerate(shells)
                      if shell.is_valid and shell.covers(point)]
        if containing:
            smallest = min(containing, key=lambda i: shells[i].area)
            assigned[smallest].append(hole)
        else:
            outers.append(hole)
            assigned.append([])
    parts = [Polygon(shell, inner) for shell, inner in zip(outers, assigned, strict=True)]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


EMPTY = Polygon()


def _single_ring(geometry: Mapping[str, Any] | None, geometry_format: str
                 ) -> list[Any] | None:
    """The closed 2-D ring of a plain one-ring Esri polygon, as received, or None.

    Points are not converted one by one here: the page's rings become one numpy
    array in a single call. A ring with fewer than 3 distinct points among its 4+
    is caught later as invalid and quarantined as unrepairable.
    """
    if geometry_format != "esrijson" or not geometry:
        return None
    rings = geometry.get("rings")
    if not rings or len(rings) != 1:
        return None
    ring = rings[0]
    if len(ring) < 4 or ring[0] != ring[-1] or len(ring[0]) != 2:
        return None
    return list(ring)


def _single_ring_polygons(flat: list[Any], offsets: list[int], records: list[SourceRecord],
                          geometry_format: str) -> np.ndarray[Any, Any]:
    """Polygons of the single-ring records; one by one if a point is not a number pair."""
    try:
        coords = np.asarray(flat, dtype=float)
    except (TypeError, ValueError):
        coords = None
    if coords is not None and coords.ndim == 2 and coords.shape[1] == 2:
        polygons: np.ndarray[Any, Any] = shapely.from_ragged_array(
            shapely.GeometryType.POLYGON, coords,
            (np.asarray(offsets), np.arange(len(records) + 1)))
        return polygons
    return np.asarray([_shape_or_empty(r, geometry_format) for r in records], dtype=object)


def _shape_or_empty(record: SourceRecord, geometry_format: str) -> BaseGeometry:
    try:
        return to_shapely(record.geometry, geometry_format)
    except (GeometryRejected, ValueError, TypeError, IndexError):
        return EMPTY


def to_shapely(geometry: Mapping[str, Any] | None, geometry_format: str) -> BaseGeometry:
    if not geometry:
        raise GeometryRejected(QuarantineReason.NULL_GEOMETRY, "the record has no geometry")
    if geometry_format == "geojson":
        kind = geometry.get("type")
        if kind not in ("Polygon", "MultiPolygon"):
            raise GeometryRejected(QuarantineReason.NON_POLYGONAL, f"a {kind} is not an area")
        if not geometry.get("coordinates"):
            raise GeometryRejected(QuarantineReason.NULL_GEOMETRY, "empty coordinates")
        return shapely.geometry.shape(dict(geometry))
    if "curveRings" in geometry:
        rings = [_curve_ring(ring) for ring in geometry["curveRings"]]
        return esri_polygon(rings)
    if "rings" in geometry:
        if not geometry["rings"]:
            raise GeometryRejected(QuarantineReason.NULL_GEOMETRY, "no rings")
        return esri_polygon(geometry["rings"])
    if "paths" in geometry or "x" in geometry or "points" in geometry:
        raise GeometryRejected(QuarantineReason.NON_POLYGONAL,
                               "a point or line geometry is not an area")
    raise GeometryRejected(QuarantineReason.PARSE_ERROR,
                           f"unknown geometry with keys {sorted(geometry)}")


# -- the page -------------------------------------------------------------------------------


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """The polygonal parts of a repaired geometry as one MultiPolygon (None if none)."""
    if geom.is_empty:
        return None
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    parts = [p for p in getattr(geom, "geoms", [])
             if isinstance(p, Polygon | MultiPolygon) and not p.is_empty]
    polygons = [q for p in parts for q in (p.geoms if isinstance(p, MultiPolygon) else [p])]
    return MultiPolygon(polygons) if polygons else None


def _round(geoms: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Snap coordinates to the 1e-7 degree grid, vectorized (cheaper than set_precision)."""
    return shapely.transform(geoms, lambda xy: np.round(xy, PRECISION_DIGITS))


def prepare_page(page: Page, *, h3_resolution: int) -> PreparedPage:
    prepared = PreparedPage(page.page_id)
    crs = page.crs or (CrsSpec(4326, 4326) if page.geometry_format == "geojson" else None)
    kept: list[SourceRecord] = []
    shapes: list[BaseGeometry] = []

    def reject(record: SourceRecord, reason: QuarantineReason, detail: str) -> None:
        prepared.rejected.append(Rejected(record.source_key, record.oid, reason, detail,
                                          record.raw))

    transformer: Transformer | None = None
    crs_problem = "the page gives no spatial reference" if crs is None else ""
    if crs is not None:
        try:
            transformer = transformer_for(crs)
        except GeometryRejected as exc:
            crs_problem = exc.detail
    # Single-ring Esri polygons, by far the most common parcels, are built in one call.
    flat: list[Any] = []
    offsets: list[int] = [0]
    single: list[int] = []
    for record in page.records:
        if not record.source_key:
            reject(record, QuarantineReason.MISSING_KEY, "the record has no value in its key field")
            continue
        if crs_problem:
            reject(record, QuarantineReason.UNKNOWN_CRS, crs_problem)
            continue
        ring = _single_ring(record.geometry, page.geometry_format)
        if ring is not None:
            flat.extend(ring)
            offsets.append(len(flat))
            single.append(len(shapes))
            shapes.append(EMPTY)
            kept.append(record)
            continue
        try:
            shapes.append(to_shapely(record.geometry, page.geometry_format))
            kept.append(record)
        except GeometryRejected as exc:
            reject(record, exc.reason, exc.detail)
        except (ValueError, TypeError, IndexError, KeyError, shapely.errors.GEOSException) as exc:
            reject(record, QuarantineReason.PARSE_ERROR, f"cannot read the geometry: {exc}")
    if not kept:
        return prepared

    geoms = np.asarray(shapes, dtype=object)
    if single:
        geoms[single] = _single_ring_polygons(flat, offsets, [kept[i] for i in single],
                                              page.geometry_format)
    if transformer is not None:
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    bounds = shapely.bounds(geoms)
    in_range = (np.isfinite(bounds).all(axis=1) & (bounds[:, 0] >= -180)
                & (bounds[:, 2] <= 180) & (bounds[:, 1] >= -90) & (bounds[:, 3] <= 90))
    geoms = _round(geoms)
    valid = shapely.is_valid(geoms)
    # The common case, valid single polygons, is promoted in one vectorized call.
    simple = valid & in_range & (shapely.get_type_id(geoms) == SHAPELY_POLYGON)
    if simple.any():
        geoms[simple] = shapely.multipolygons(geoms[simple], indices=np.arange(simple.sum()))
    repaired = np.zeros(len(kept), dtype=bool)
    usable = np.zeros(len(kept), dtype=bool)
    for i in np.nonzero(~simple)[0]:
        record = kept[i]
        if geoms[i].is_empty:
            reject(record, QuarantineReason.PARSE_ERROR, "the ring's points are not number pairs")
            continue
        if not in_range[i]:
            reject(record, QuarantineReason.OUT_OF_RANGE,
                   f"coordinates outside lon/lat range after transform: {bounds[i].tolist()}")
            continue
        geom = geoms[i]
        if not valid[i]:
            geom = shapely.make_valid(geom)
            repaired[i] = True
        multi = _polygonal(geom)
        if multi is None:
            reason = (QuarantineReason.UNREPAIRABLE_GEOMETRY if repaired[i]
                      else QuarantineReason.NON_POLYGONAL)
            reject(record, reason, "no area remains after repair" if repaired[i]
                   else "the geometry holds no polygon")
            continue
        geoms[i] = multi
        usable[i] = True
    usable |= simple
    if not usable.any():
        return prepared
    final = shapely.normalize(geoms[usable])
    wkbs = shapely.to_wkb(final, output_dimension=2, byte_order=1)
    points = shapely.point_on_surface(final)
    xs, ys = shapely.get_x(points), shapely.get_y(points)
    for j, i in enumerate(np.nonzero(usable)[0]):
        record = kept[i]
        assert record.source_key is not None
        wkb = bytes(wkbs[j])
        prepared.rows.append(ReadyRow(
            source_key=record.source_key, oid=record.oid,
            chunk=chunk_of(float(xs[j]), float(ys[j]), h3_resolution), fields=record.fields,
            attrs=record.attrs, edited_at=record.edited_at, wkb=wkb,
            row_hash=row_hash(record.fields, record.attrs, wkb)))
    prepared.repaired = int(repaired[usable].sum())
    return prepared
