"""Upstream polygons to valid lon/lat MultiPolygons on a 1e-7 degree grid, a page at a time.

Runs in the thread pool: it imports neither asyncpg nor aiohttp. `read_shapes`
lists the rings of a page's geometries: Esri rings still in their JSON text all
at once (`packed_esri_rings`), any other geometry one by one (`read_shape`, which
also checks it). `build_multipolygons` then handles a whole page's rings as one
coordinate array: closing, degenerate rings, orientation, reprojection, range
check and grid snapping are numpy operations, and geometries are built, checked
and repaired with vectorized shapely calls. Python loops run per record or per
ring, never per coordinate, except to densify curves and read decoded JSON.

Esri rings carry no structure: outer rings are clockwise, holes counter-clockwise.
A hole goes into the smallest outer ring that covers it; a ring that lies in no
outer ring is an outer ring whatever its orientation (zero area included), so no
ring that can bound an area is dropped. GeoJSON polygons carry their structure.

Coordinates are snapped to the grid with numpy before validation rather than with
`shapely.set_precision`, which costs 60 µs per valid parcel; both round to the same
grid. Geometries that are invalid on the grid are repaired with `make_valid` and
then snapped with `set_precision`, which keeps them valid.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from zoningsync.crs import ToLonLat
from zoningsync.errors import ZoningsyncError
from zoningsync.records import QuarantineReason, RawJson

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]
Point = Sequence[Any]

GRID = 1e-7  # degrees, about 1 cm
GRID_DECIMALS = 7
ARC_STEP = math.radians(5)  # chord deviation at most 0.1% of the radius
BEZIER_SEGMENTS = 32
_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
# What reading one hostile geometry can raise besides GeometryRejected: members of
# the wrong type or count (a curve segment {"c": 5}, a geometry that is a list),
# nesting too deep, numbers out of range. Caught per record, only on the slow path.
UNREADABLE = (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError,
              OverflowError, ArithmeticError)


class GeometryRejected(ZoningsyncError):
    """A record's geometry cannot be stored."""

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Shape:
    """One record's rings as received (2-D, 3-D or 4-D points), before assembly.

    Rings read from JSON text a page at a time are (n, 2) arrays instead.

    `parts` is None for Esri rings (assembled by orientation and containment);
    for GeoJSON it gives each ring's polygon number, the first ring of each
    polygon being its shell.
    """

    rings: Sequence[Sequence[Point] | FloatArray]
    parts: list[int] | None = None


Problem = tuple[QuarantineReason, str]  # why a shape cannot be stored, and a detail


@dataclass(slots=True)
class Built:
    """A page of shapes after the stage: one MultiPolygon or one problem per shape."""

    geoms: ObjectArray
    problems: dict[int, Problem] = field(default_factory=dict)
    repaired: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))


# -- one record's geometry ------------------------------------------------------------------


def read_shapes(geometries: Sequence[Mapping[str, Any] | RawJson | None],
                geometry_format: str) -> list[Shape | Problem]:
    """`read_shape` for a page: Esri rings still in their JSON text are read at once.

    Each geometry becomes its Shape or the reason and detail of its rejection
    (not the exception: its traceback would hold this frame, the page's rings
    with it, in a cycle that the relaxed collector leaves for long). A geometry
    that is not what its format says, however malformed, is a `parse_error`.
    """
    texts = [g if type(g) is RawJson and geometry_format == "esrijson" else b""
             for g in geometries]
    packed: list[list[FloatArray] | None] = (
        packed_esri_rings(texts) if any(texts) else [None] * len(texts))
    shapes: list[Shape | Problem] = []
    for geometry, rings in zip(geometries, packed, strict=True):
        if rings is not None:
            shapes.append(Shape(rings))
            continue
        try:
            shapes.append(read_shape(_decoded(geometry), geometry_format))
        except GeometryRejected as exc:
            shapes.append((exc.reason, exc.detail))
        except UNREADABLE as exc:
            shapes.append((QuarantineReason.PARSE_ERROR,
                           f"the geometry is malformed ({type(exc).__name__}: {str(exc)[:200]})"))
    return shapes


def _decoded(geometry: Mapping[str, Any] | RawJson | None) -> Any:
    if not isinstance(geometry, RawJson):
        return geometry
    try:
        return orjson.loads(bytes(geometry))  # orjson takes exact bytes only
    except orjson.JSONDecodeError as exc:  # nested deeper than 1,024 levels included
        raise GeometryRejected(QuarantineReason.PARSE_ERROR,
                               f"the geometry is not readable JSON ({exc})") from None


def read_shape(geometry: Mapping[str, Any] | None, geometry_format: str) -> Shape:
    """The rings of one upstream geometry; raises GeometryRejected for what is no area."""
    if not geometry:
        raise GeometryRejected(QuarantineReason.NULL_GEOMETRY, "the record has no geometry")
    if not isinstance(geometry, Mapping):
        raise GeometryRejected(QuarantineReason.PARSE_ERROR,
                               f"the geometry is {type(geometry).__name__}, not an object")
    if geometry_format == "geojson":
        return _geojson_shape(geometry)
    if "curveRings" in geometry:
        curves: list[Sequence[Point]] = [
            _densify(ring) for ring in _list(geometry["curveRings"], "curveRings")]
        return _nonempty(Shape(curves))
    if "rings" in geometry:
        return _nonempty(Shape(_list(geometry["rings"], "rings")))
    if {"x", "y"} & geometry.keys() or "points" in geometry or "paths" in geometry:
        kind = "a polyline" if "paths" in geometry else "a point"
        raise GeometryRejected(QuarantineReason.NON_POLYGONAL, f"{kind} has no area")
    raise GeometryRejected(QuarantineReason.PARSE_ERROR,
                           f"unknown Esri geometry with keys {sorted(geometry)[:5]}")


def _geojson_shape(geometry: Mapping[str, Any]) -> Shape:
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [_list(coordinates, "coordinates")]
    elif kind == "MultiPolygon":
        polygons = _list(coordinates, "coordinates")
    elif kind in ("Point", "MultiPoint", "LineString", "MultiLineString", "GeometryCollection"):
        raise GeometryRejected(QuarantineReason.NON_POLYGONAL, f"a {kind} has no area")
    else:
        raise GeometryRejected(QuarantineReason.PARSE_ERROR, f"unknown GeoJSON type {kind!r}")
    rings: list[Sequence[Point]] = []
    parts: list[int] = []
    for number, polygon in enumerate(polygons):
        for ring in _list(polygon, "polygon"):
            rings.append(_list(ring, "ring"))
            parts.append(number)
    return _nonempty(Shape(rings, parts))


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise GeometryRejected(QuarantineReason.PARSE_ERROR, f"{what} is not a list")
    return value


def _nonempty(shape: Shape) -> Shape:
    """Drop rings without points; a shape left with none is a null geometry."""
    if shape.rings and all(shape.rings):
        return shape
    keep = [i for i, ring in enumerate(shape.rings) if ring]
    if not keep:
        raise GeometryRejected(QuarantineReason.NULL_GEOMETRY, "the geometry has no points")
    parts = None if shape.parts is None else [shape.parts[i] for i in keep]
    return Shape([shape.rings[i] for i in keep], parts)


# -- curves ---------------------------------------------------------------------------------


def _densify(ring: Any) -> list[Point]:
    """An Esri curve ring as points: circular arcs and Bezier curves become segments."""
    points: list[Point] = []
    for item in _list(ring, "curve ring"):
        if not isinstance(item, dict):
            points.append(item)
            continue
        if not points:
            raise GeometryRejected(QuarantineReason.UNSUPPORTED_CURVE,
                                   "a curve segment starts the ring")
        start = _xy(points[-1])
        if "c" in item:
            end, through = item["c"]
            points.extend(_arc(start, _xy(through), _xy(end)).tolist())
        elif "b" in item:
            end, first, second = item["b"]
            points.extend(_bezier(start, _xy(first), _xy(second), _xy(end)).tolist())
        else:
            raise GeometryRejected(QuarantineReason.UNSUPPORTED_CURVE,
                                   f"curve segment {sorted(item)} is not a circular arc "
                                   "or a Bezier curve")
    return points


def _xy(point: Any) -> FloatArray:
    try:
        return np.array([float(point[0]), float(point[1])])
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise GeometryRejected(QuarantineReason.PARSE_ERROR,
                               f"a curve point is not a number pair: {point!r}") from exc


def _arc(start: FloatArray, through: FloatArray, end: FloatArray) -> FloatArray:
    """Points of the circular arc from start through `through` to end, end included."""
    (x1, y1), (x2, y2), (x3, y3) = start, through, end
    span = max(abs(x2 - x1), abs(y2 - y1), abs(x3 - x1), abs(y3 - y1), 1e-300)
    if np.allclose(start, end, rtol=0, atol=span * 1e-12):  # a full circle
        center = (start + through) / 2
        radius = math.hypot(*(start - center))
        begin, sweep = math.atan2(*(start - center)[::-1]), -2 * math.pi
    else:
        d = 2 * (x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2))
        if abs(d) <= 1e-12 * span * span:  # collinear: a straight segment
            return end.reshape(1, 2)
        s1, s2, s3 = x1 * x1 + y1 * y1, x2 * x2 + y2 * y2, x3 * x3 + y3 * y3
        center = np.array([(s1 * (y2 - y3) + s2 * (y3 - y1) + s3 * (y1 - y2)) / d,
                           (s1 * (x3 - x2) + s2 * (x1 - x3) + s3 * (x2 - x1)) / d])
        radius = math.hypot(*(start - center))
        begin = math.atan2(y1 - center[1], x1 - center[0])
        to_through = (math.atan2(y2 - center[1], x2 - center[0]) - begin) % (2 * math.pi)
        sweep = (math.atan2(y3 - center[1], x3 - center[0]) - begin) % (2 * math.pi)
        if to_through > sweep:  # the arc runs clockwise
            sweep -= 2 * math.pi
    steps = max(2, math.ceil(abs(sweep) / ARC_STEP))
    angles = begin + sweep * np.arange(1, steps + 1) / steps
    points = center + radius * np.column_stack([np.cos(angles), np.sin(angles)])
    points[-1] = end
    return points


def _bezier(start: FloatArray, first: FloatArray, second: FloatArray, end: FloatArray
            ) -> FloatArray:
    t = (np.arange(1, BEZIER_SEGMENTS + 1) / BEZIER_SEGMENTS)[:, None]
    u = 1 - t
    points = u**3 * start + 3 * u * u * t * first + 3 * u * t * t * second + t**3 * end
    points[-1] = end
    return points


# -- Esri rings from their JSON text --------------------------------------------------------

_RINGS_HEAD = b'{"rings":'
_RING_TEXT = b"0123456789.-+eE,[] \t\r\n"
_NUMBERS_AND_BLANKS = b"0123456789.-+eE \t\r\n"
# What is left of a rings array without its numbers and blanks: [[[,],[,]],[[,],[,]]].
_SKELETON = rb"\[\[\[,\](?:,\[,\])*\](?:,\[\[,\](?:,\[,\])*\])*\]"
_ONE_SKELETON = re.compile(_SKELETON)
_SKELETONS = re.compile(rb"(?:" + _SKELETON + rb"\|)*")
_OPEN, _CLOSE, _COMMA, _BAR = b"[],|"


def packed_esri_rings(texts: Sequence[bytes]) -> list[list[FloatArray] | None]:
    """The rings of Esri polygons given as JSON text, a page of them at a time.

    Reads the form servers write, `{"rings":[[[x,y],...],...]}` with 2-D points,
    into one array per ring without a Python object per point. The text without
    its numbers and blanks must be a plain skeleton, such as [[[,],[,]],[[,]]];
    orjson then parses the numbers, stripped of brackets, as one flat list, so
    both ways of reading a geometry give the same floats, and a slot that does not
    hold exactly one number fails that parse. Any other text (Z or M values,
    curves, a spaced or different head, an empty ring or point) gives None, and
    the caller decodes that geometry as JSON instead.
    """
    found: list[list[FloatArray] | None] = [None] * len(texts)
    candidates = [i for i, text in enumerate(texts)
                  if text.startswith(b'{"rings":[[[') and text.endswith(b"]]]}")]
    bodies = [texts[i][len(_RINGS_HEAD):-1] for i in candidates]
    plain, text, skeleton = _plain_bodies(bodies)
    if not any(plain):
        return found
    try:
        numbers = orjson.loads(b"[" + text[:-1].replace(b"|", b",").translate(None, b"[]")
                               + b"]")
        coords = np.array(numbers, dtype=np.float64)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return _one_by_one(texts)
    marks = np.frombuffer(skeleton, dtype=np.uint8)
    commas, closes = marks == _COMMA, marks == _CLOSE
    points = np.flatnonzero(commas[1:] & (marks[:-1] == _OPEN)) + 1  # the comma of [,]
    ring_ends = np.flatnonzero(closes[2:] & closes[1:-1] & commas[:-2]) + 2  # ,]]
    ring_lengths = np.diff(np.searchsorted(points, ring_ends), prepend=0)
    rings_per_text = np.diff(np.searchsorted(ring_ends, np.flatnonzero(marks == _BAR)),
                             prepend=0)
    if coords.shape != (2 * len(points),):
        return _one_by_one(texts)
    xy = coords.reshape(-1, 2)
    ends = np.cumsum(ring_lengths).tolist()
    rings = [xy[end - length:end] for end, length in zip(ends, ring_lengths.tolist(),
                                                           strict=True)]
    first = 0
    for index, count in zip(itertools.compress(candidates, plain), rings_per_text.tolist(),
                            strict=True):
        found[index] = rings[first:first + count]
        first += count
    return found


def _one_by_one(texts: Sequence[bytes]) -> list[list[FloatArray] | None]:
    """After a page's numbers failed to parse: each text alone, so one spoils only itself."""
    if len(texts) == 1:
        return [None]
    return [packed_esri_rings([text])[0] for text in texts]


def _plain_bodies(bodies: Sequence[bytes]) -> tuple[list[bool], bytes, bytes]:
    """Which rings arrays hold only numbers in a plain skeleton, the plain ones each
    followed by "|", and their skeleton. The page is checked at once if all are plain.
    """
    text = b"|".join(bodies) + b"|"
    skeleton = text.translate(None, _NUMBERS_AND_BLANKS)
    if not text.translate(None, _RING_TEXT + b"|") and _SKELETONS.fullmatch(skeleton):
        return [True] * len(bodies), text, skeleton
    plain = [not body.translate(None, _RING_TEXT)
             and _ONE_SKELETON.fullmatch(body.translate(None, _NUMBERS_AND_BLANKS)) is not None
             for body in bodies]
    text = b"|".join(itertools.compress(bodies, plain)) + b"|"
    return plain, text, text.translate(None, _NUMBERS_AND_BLANKS)


# -- a page of shapes -----------------------------------------------------------------------


@dataclass(slots=True)
class _Rings:
    """Every ring of a page in one coordinate array; ring i is coords[start[i]:end[i]]."""

    coords: FloatArray
    lengths: IntArray
    shape: IntArray  # which shape each ring belongs to
    position: IntArray  # the ring's number within its shape, as received
    part: IntArray  # GeoJSON polygon number within its shape, -1 for Esri

    @property
    def starts(self) -> IntArray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.intp)

    def point_owner(self) -> IntArray:
        return np.repeat(self.shape, self.lengths)

    def subset(self, keep: BoolArray) -> _Rings:
        return _Rings(self.coords[np.repeat(keep, self.lengths)], self.lengths[keep],
                      self.shape[keep], self.position[keep], self.part[keep])


def build_multipolygons(shapes: Sequence[Shape], to_lonlat: ToLonLat | None) -> Built:
    """Each shape as a valid, normalized lon/lat MultiPolygon on the grid, or its problem.

    `repaired[i]` says shape i needed a repair (a dropped degenerate ring or
    `make_valid`) to become storable.
    """
    built = Built(np.full(len(shapes), None, dtype=object), {},
                  np.zeros(len(shapes), dtype=bool))
    rings = _gather(shapes, built)
    if rings is None:
        return built
    rings = _close(rings)
    areas = _signed_areas(rings)
    keep = _drop_degenerate(rings, areas, shapes, built)
    rings, areas = rings.subset(keep), areas[keep]
    if to_lonlat is not None:
        lon, lat = to_lonlat(rings.coords[:, 0], rings.coords[:, 1])
        rings.coords = np.column_stack([lon, lat])
    keep = _check_range(rings, built)
    rings, areas = rings.subset(keep), areas[keep]
    if len(rings.lengths) == 0:
        return built
    rings.coords = np.round(rings.coords, GRID_DECIMALS)
    ring_geoms: ObjectArray = np.asarray(shapely.linearrings(
        rings.coords, indices=np.repeat(np.arange(len(rings.lengths)), rings.lengths)))
    order, ring_part, part_shape = _assemble(rings, areas, ring_geoms)
    polygons: ObjectArray = np.asarray(shapely.polygons(ring_geoms[order], indices=ring_part))
    shapely.multipolygons(polygons, indices=part_shape, out=built.geoms)
    _repair(built)
    present = np.flatnonzero(~shapely.is_missing(built.geoms))
    built.geoms[present] = shapely.normalize(built.geoms[present])
    return built


def _gather(shapes: Sequence[Shape], built: Built) -> _Rings | None:
    """The page's rings as one array; shapes whose points are not numbers are rejected."""
    points: list[Point] = []  # points of list rings not yet in `segments`
    segments: list[FloatArray | None] = []  # None: points that are not numbers
    lengths: list[int] = []
    shape_of: list[int] = []
    position: list[int] = []
    part: list[int] = []
    for index, shape in enumerate(shapes):
        for number, ring in enumerate(shape.rings):
            if isinstance(ring, np.ndarray):
                if points:
                    segments.append(_coordinates(points))
                    points = []
                segments.append(ring)
            else:
                points.extend(ring)
            lengths.append(len(ring))
            shape_of.append(index)
            position.append(number)
        part.extend(shape.parts if shape.parts is not None else [-1] * len(shape.rings))
    if points:
        segments.append(_coordinates(points))
    if not segments:
        return None
    present = [segment for segment in segments if segment is not None]
    if len(present) < len(segments):  # find the culprits; the page goes on
        arrays = []
        for index, shape in enumerate(shapes):
            own = _shape_coordinates(shape)
            if own is None:
                built.problems[index] = (QuarantineReason.PARSE_ERROR,
                                         "coordinates are not number pairs")
                own = np.full((sum(map(len, shape.rings)), 2), np.nan)
            arrays.append(own)
        coords = np.concatenate(arrays)
    else:
        coords = np.concatenate(present) if len(present) > 1 else present[0]
    rings = _Rings(coords, np.asarray(lengths, dtype=np.intp), np.asarray(shape_of, np.intp),
                   np.asarray(position, np.intp), np.asarray(part, np.intp))
    bad = np.zeros(len(shapes), dtype=bool)
    bad[rings.point_owner()[~np.isfinite(coords).all(axis=1)]] = True
    for culprit in np.flatnonzero(bad).tolist():
        built.problems.setdefault(culprit, (QuarantineReason.PARSE_ERROR,
                                               "coordinates are missing or not finite"))
    if bad.all():
        return None
    return rings.subset(~bad[rings.shape]) if bad.any() else rings


def _shape_coordinates(shape: Shape) -> FloatArray | None:
    if shape.rings and isinstance(shape.rings[0], np.ndarray):
        return np.concatenate(shape.rings)
    return _coordinates([p for ring in shape.rings for p in ring])


def _coordinates(points: list[Point]) -> FloatArray | None:
    """x and y of every point as an (n, 2) array; Z and M values are ignored."""
    try:
        dims = set(map(len, points))
        if not dims or min(dims) < 2:
            return None
        if dims != {2}:
            points = [p[:2] for p in points]
        flat = np.fromiter(itertools.chain.from_iterable(points), dtype=np.float64,
                           count=2 * len(points))
    except (TypeError, ValueError):
        return None
    return flat.reshape(-1, 2)


def _close(rings: _Rings) -> _Rings:
    """Repeat the first point at the end of every ring that is not closed."""
    starts = rings.starts
    ends = starts + rings.lengths
    first = rings.coords[starts]
    unclosed = (first != rings.coords[ends - 1]).any(axis=1)
    if unclosed.any():
        rings.coords = np.insert(rings.coords, ends[unclosed], first[unclosed], axis=0)
        rings.lengths = rings.lengths + unclosed
    return rings


def _signed_areas(rings: _Rings) -> FloatArray:
    """Shoelace areas of all rings at once; negative means clockwise."""
    starts = rings.starts
    local = rings.coords - np.repeat(rings.coords[starts], rings.lengths, axis=0)
    x, y = local[:, 0], local[:, 1]
    cross = np.zeros(len(x))
    cross[:-1] = x[:-1] * y[1:] - x[1:] * y[:-1]
    cross[starts + rings.lengths - 1] = 0.0  # the step from one ring to the next
    areas: FloatArray = np.add.reduceat(cross, starts) / 2
    return areas


def _drop_degenerate(rings: _Rings, areas: FloatArray, shapes: Sequence[Shape],
                     built: Built) -> BoolArray:
    """Rings with fewer than 3 distinct points bound nothing: drop them, say why."""
    keep = np.ones(len(areas), dtype=bool)
    suspects = np.flatnonzero((areas == 0) | (rings.lengths < 4))
    why: dict[int, list[str]] = {}
    starts = rings.starts
    for ring in suspects:  # only flat rings can be degenerate: rare
        points = rings.coords[starts[ring]:starts[ring] + rings.lengths[ring]]
        distinct = len(np.unique(points, axis=0))
        if distinct < 3:
            keep[ring] = False
            why.setdefault(int(rings.shape[ring]), []).append(
                f"ring {rings.position[ring]} has {distinct} distinct points")
    if not why:
        return keep
    shells = np.zeros(len(areas), dtype=bool)  # GeoJSON holes go with a dropped shell
    shells[_first_of_parts(rings)] = True
    for ring in np.flatnonzero(~keep & shells & (rings.part >= 0)):
        keep &= ~((rings.shape == rings.shape[ring]) & (rings.part == rings.part[ring]))
    left = np.bincount(rings.shape[keep], minlength=len(shapes))
    for index, reasons in why.items():
        if left[index] == 0:
            built.problems[index] = (QuarantineReason.UNREPAIRABLE_GEOMETRY,
                                     "no ring can bound an area: " + "; ".join(reasons))
        else:
            built.repaired[index] = True
    return keep


def _first_of_parts(rings: _Rings) -> IntArray:
    """Indices of the first ring of each (shape, GeoJSON polygon) group."""
    change = np.ones(len(rings.shape), dtype=bool)
    change[1:] = (rings.shape[1:] != rings.shape[:-1]) | (rings.part[1:] != rings.part[:-1])
    return np.flatnonzero(change)


def _check_range(rings: _Rings, built: Built) -> BoolArray:
    """Reject shapes with a point outside lon/lat range (or one PROJ could not transform)."""
    lon, lat = rings.coords[:, 0], rings.coords[:, 1]
    with np.errstate(invalid="ignore"):
        good = (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if good.all():
        return np.ones(len(rings.lengths), dtype=bool)
    owner = rings.point_owner()
    bad = np.unique(owner[~good])
    for index in bad:
        mine = rings.coords[owner == index]
        with np.errstate(invalid="ignore"):
            box = [float(np.nanmin(mine[:, 0])), float(np.nanmin(mine[:, 1])),
                   float(np.nanmax(mine[:, 0])), float(np.nanmax(mine[:, 1]))]
        built.problems[int(index)] = (QuarantineReason.OUT_OF_RANGE,
                                      f"lon/lat out of range after reprojection: bounds {box}")
    keep: BoolArray = ~np.isin(rings.shape, bad)
    return keep


def _assemble(rings: _Rings, areas: FloatArray, ring_geoms: ObjectArray
              ) -> tuple[IntArray, IntArray, IntArray]:
    """Group rings into polygons: ring order (shell first), each ring's part, each part's shape.

    Every ring names the shell of its polygon (its leader); a shell leads itself.
    Sorting by leader, shells first, gives the order `shapely.polygons` wants.
    """
    count = len(rings.lengths)
    leader = np.arange(count)
    geojson = rings.part >= 0
    if geojson.any():
        marks = np.zeros(count, dtype=np.intp)
        marks[_first_of_parts(rings)] = _first_of_parts(rings)
        leader = np.where(geojson, np.maximum.accumulate(marks), leader)
    for hole, outer in _esri_holes(rings, areas, ring_geoms).items():
        leader[hole] = outer
    order = np.lexsort((leader != np.arange(count), leader)).astype(np.intp)
    led = leader[order]
    new_part = np.ones(count, dtype=bool)
    new_part[1:] = led[1:] != led[:-1]
    ring_part = (np.cumsum(new_part) - 1).astype(np.intp)
    part_shape = rings.shape[led[new_part]].astype(np.intp)
    return order, ring_part, part_shape


def _esri_holes(rings: _Rings, areas: FloatArray, ring_geoms: ObjectArray) -> dict[int, int]:
    """Each Esri hole (counter-clockwise ring) and the smallest outer ring covering it.

    Holes that no outer ring of their shape covers are absent: they are outer rings.
    """
    esri = rings.part < 0
    counts = np.bincount(rings.shape[esri], minlength=int(rings.shape.max()) + 1)
    shared = esri & (counts[rings.shape] > 1) if esri.any() else esri
    pairs: list[tuple[int, int]] = []  # (outer ring, candidate hole) of the same shape
    members = np.flatnonzero(shared)
    for _, group in itertools.groupby(members.tolist(), key=lambda r: int(rings.shape[r])):
        ring_ids = list(group)
        outers = [r for r in ring_ids if areas[r] <= 0]
        pairs += [(o, h) for h in ring_ids if areas[h] > 0 for o in outers]
    home: dict[int, int] = {}
    for (outer, hole), inside in zip(pairs, _covers(ring_geoms, pairs), strict=True):
        if inside and (hole not in home or -areas[outer] < -areas[home[hole]]):
            home[hole] = outer
    return home


def _covers(ring_geoms: ObjectArray, pairs: list[tuple[int, int]]) -> list[bool]:
    """Whether each pair's outer ring covers its hole ring (tested as filled polygons)."""
    if not pairs:
        return []
    outer = shapely.polygons(ring_geoms[[o for o, _ in pairs]])
    hole = shapely.polygons(ring_geoms[[h for _, h in pairs]])
    try:
        inside: BoolArray = np.asarray(shapely.covers(outer, hole), dtype=bool)
    except shapely.errors.GEOSException:  # a broken outer ring: fall back to a vertex
        vertex = shapely.get_point(ring_geoms[[h for _, h in pairs]], 0)
        inside = np.asarray(shapely.covers(outer, vertex), dtype=bool)
    return [bool(v) for v in inside]


def _repair(built: Built) -> None:
    """make_valid what is invalid on the grid; keep its areas, snap them back on the grid."""
    geoms = built.geoms
    present = ~shapely.is_missing(geoms)
    valid = np.zeros(len(geoms), dtype=bool)
    valid[present] = shapely.is_valid(geoms[present])
    broken = np.flatnonzero(present & ~valid)
    if broken.size == 0:
        return
    reasons = shapely.is_valid_reason(geoms[broken])
    fixed = shapely.make_valid(geoms[broken])
    for index, reason, geom in zip(broken, reasons, fixed, strict=True):
        result = _snap(_polygonal_part(geom))
        if result is None:
            geoms[index] = None
            built.problems[int(index)] = (QuarantineReason.UNREPAIRABLE_GEOMETRY,
                                          f"{reason}; no area remains after repair at "
                                          f"{GRID:g} degree precision")
        else:
            geoms[index] = result
            built.repaired[index] = True


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry | None:
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
    polygons = shapely.get_parts(parts)  # MultiPolygons into Polygons
    polygons = polygons[~shapely.is_empty(polygons)]
    if polygons.size == 0:
        return None
    return shapely.MultiPolygon(polygons.tolist())


def _snap(geom: BaseGeometry | None) -> BaseGeometry | None:
    """The geometry on the grid, still valid, as a MultiPolygon (None if it collapses)."""
    if geom is None:
        return None
    try:
        snapped = shapely.set_precision(geom, GRID)
    except shapely.errors.GEOSException:
        return None
    return _polygonal_part(snapped)
