"""Parcel and district footprints, generated from grid slots when a page is served.

Nothing here is stored per feature: a footprint is a pure function of its slot on
the county grid, a geometry revision and the county seed, so a million parcels cost
no memory until a page of them is asked for. A page is built with numpy in local
metres, converted to lon/lat, projected to the layer CRS with one pyproj call, and
turned into nested lists with one `tolist()`; only the final slicing into rings is
a Python loop.

Rings follow the Esri convention (outer clockwise, holes counter-clockwise);
`to_geojson` reverses them for RFC 7946.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

CENTER_LON, CENTER_LAT = -78.64, 35.78
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(CENTER_LAT))

# Shape kinds of a parcel footprint.
PLAIN, COURTYARD, MULTIPART, BOWTIE, NULL = 0, 1, 2, 3, 4

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Rings = list[list[list[float]]]

# Slot order of the 12-vertex template, clockwise from the south-west corner:
# SW, W1, W2, NW, N1, N2, NE, E1, E2, SE, S1, S2. Fractions of (width, height).
_TEMPLATE = np.array([
    (0, 0), (0, 1 / 3), (0, 2 / 3), (0, 1), (1 / 3, 1), (2 / 3, 1),
    (1, 1), (1, 2 / 3), (1, 1 / 3), (1, 0), (2 / 3, 0), (1 / 3, 0),
])
_CORNERS = np.array([0, 3, 6, 9])
# Edge points in the order they are added as a parcel gets more vertices.
_EXTRAS = np.array([1, 4, 7, 10, 2, 5, 8, 11])
# Direction of the perpendicular jitter of each slot (edge points move across
# their edge; corners move diagonally).
_NORMAL = np.array([
    (1, 1), (1, 0), (1, 0), (1, 1), (0, 1), (0, 1),
    (1, 1), (1, 0), (1, 0), (1, 1), (0, 1), (0, 1),
])
JITTER_M = 1.5
_TARGETS = {2264: "EPSG:2264", 102100: "EPSG:3857"}  # 102100 is Esri's name for 3857


def mix(values: IntArray, salt: int) -> IntArray:
    """A cheap deterministic hash of integers (splitmix64), for jitter and picks."""
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        x = values.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFF) * np.uint64(
            0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (x ^ (x >> np.uint64(31))).astype(np.int64) & np.int64(0x7FFFFFFFFFFF)


def unit(values: IntArray, salt: int) -> FloatArray:
    """Deterministic uniform numbers in [0, 1) from integers."""
    return (mix(values, salt) % 1_000_003) / 1_000_003.0


@dataclass(frozen=True)
class Grid:
    """The county grid: `cols` slots a row, `spacing_m` apart, centred on Raleigh."""

    cols: int
    spacing_m: float
    seed: int

    @property
    def size_m(self) -> float:
        return self.cols * self.spacing_m

    def origin_m(self, slots: IntArray) -> tuple[FloatArray, FloatArray]:
        """South-west corner of each slot, in metres from the county centre."""
        half = self.size_m / 2
        x = (slots % self.cols) * self.spacing_m - half
        y = (slots // self.cols) * self.spacing_m - half
        return x.astype(np.float64), y.astype(np.float64)

    def parcel_size_m(self, slots: IntArray, revs: IntArray) -> tuple[FloatArray, FloatArray]:
        """Width and height, 30–60 m, never wider than the slot."""
        limit = min(60.0, self.spacing_m - 2 * JITTER_M - 1)
        keys = slots * 64 + revs
        width = np.minimum(30 + 30 * unit(keys, self.seed + 11), limit)
        height = np.minimum(30 + 30 * unit(keys, self.seed + 12), limit)
        return width, height


def to_lonlat(x_m: FloatArray, y_m: FloatArray) -> tuple[FloatArray, FloatArray]:
    return CENTER_LON + x_m / M_PER_DEG_LON, CENTER_LAT + y_m / M_PER_DEG_LAT


class Projector:
    """Lon/lat to the layer CRS, vectorized, with the precision a server would print."""

    def __init__(self, crs: int) -> None:
        self.crs = crs
        target = _TARGETS.get(crs)
        self._transformer = (Transformer.from_crs("EPSG:4326", target, always_xy=True)
                             if target else None)
        self.decimals = 8 if self._transformer is None else 3

    def project(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        if self._transformer is None:
            return lon, lat
        x, y = self._transformer.transform(lon, lat)
        return np.asarray(x), np.asarray(y)


Spans = list[list[tuple[int, int]] | None]


def parcel_rings_m(grid: Grid, slots: IntArray, revs: IntArray, kinds: IntArray,
                   vertices: IntArray) -> tuple[FloatArray, Spans]:
    """All points of the page in metres, and each feature's rings as (start, length)
    spans into them (None: a null geometry).

    Plain outer rings come from one vectorized template; only the rare special
    shapes (holes, multipart, bow-ties) get points of their own.
    """
    n = len(slots)
    x0, y0 = grid.origin_m(slots)
    width, height = grid.parcel_size_m(slots, revs)
    keys = (slots * 64 + revs)[:, None] * 16 + np.arange(12)
    jitter = (unit(keys, grid.seed + 13) * 2 - 1) * JITTER_M
    px = x0[:, None] + _TEMPLATE[:, 0] * width[:, None] + jitter * _NORMAL[:, 0]
    py = y0[:, None] + _TEMPLATE[:, 1] * height[:, None] + jitter * _NORMAL[:, 1]
    px = np.column_stack([px, px[:, 0]])  # close each ring
    py = np.column_stack([py, py[:, 0]])
    keep = np.zeros((n, 13), dtype=bool)
    keep[:, _CORNERS] = True
    keep[:, 12] = True
    keep[:, _EXTRAS] = np.arange(8) < np.clip(vertices - 4, 0, 8)[:, None]
    outer = np.column_stack([px[keep], py[keep]])
    counts = keep.sum(axis=1).tolist()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    extra: list[FloatArray] = []
    cursor = len(outer)
    spans: Spans = []
    kind_list = kinds.tolist()
    for i in range(n):
        kind = kind_list[i]
        if kind == PLAIN:
            spans.append([(starts[i], counts[i])])
            continue
        if kind == NULL:
            spans.append(None)
            continue
        a, lo, w, h = x0[i], y0[i], width[i], height[i]
        if kind == BOWTIE:
            rings = [np.array([(a, lo), (a + w, lo + h), (a + w, lo), (a, lo + h), (a, lo)])]
        elif kind == MULTIPART:
            rings = [_rect_cw(a, lo, w * 0.45, h), _rect_cw(a + w * 0.55, lo, w * 0.45, h)]
        else:  # courtyard: the plain outer ring and a counter-clockwise hole
            rings = [_rect_cw(a + w * 0.35, lo + h * 0.35, w * 0.3, h * 0.3)[::-1]]
        own = [] if kind != COURTYARD else [(starts[i], counts[i])]
        for ring in rings:
            own.append((cursor, len(ring)))
            cursor += len(ring)
        extra.extend(rings)
        spans.append(own)
    return np.vstack([outer, *extra]), spans


def _rect_cw(x: float, y: float, w: float, h: float) -> FloatArray:
    return np.array([(x, y), (x, y + h), (x + w, y + h), (x + w, y), (x, y)])


def assemble(flat_m: FloatArray, spans: Spans, projector: Projector) -> list[Rings | None]:
    """Project the page's points and cut them back into each feature's rings."""
    lon, lat = to_lonlat(flat_m[:, 0], flat_m[:, 1])
    x, y = projector.project(lon, lat)
    coords: list[list[float]] = np.round(np.column_stack([x, y]),
                                         projector.decimals).tolist()
    return [None if rings is None else [coords[s:s + k] for s, k in rings] for rings in spans]


def district_rings_m(grid: Grid, per_side: int, indices: IntArray
                     ) -> tuple[FloatArray, Spans]:
    """Quads on a jittered node grid: neighbours share their edges, so they tile."""
    step = grid.size_m / per_side
    half = grid.size_m / 2
    gx, gy = indices % per_side, indices // per_side
    corners = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]  # clockwise
    points = np.zeros((len(indices), 5, 2))
    for k, (dx, dy) in enumerate(corners):
        nx, ny = gx + dx, gy + dy
        node = ny * (per_side + 1) + nx
        interior_x = (nx > 0) & (nx < per_side)
        interior_y = (ny > 0) & (ny < per_side)
        points[:, k, 0] = nx * step - half + interior_x * (
            unit(node, grid.seed + 21) - 0.5) * 0.4 * step
        points[:, k, 1] = ny * step - half + interior_y * (
            unit(node, grid.seed + 22) - 0.5) * 0.4 * step
    return points.reshape(-1, 2), [[(5 * i, 5)] for i in range(len(indices))]


def to_geojson(rings: Rings | None) -> dict[str, Any] | None:
    """Esri rings (outer clockwise) as a GeoJSON Polygon or MultiPolygon (outer CCW)."""
    if rings is None:
        return None
    polygons: list[Rings] = []
    for ring in rings:
        if _signed_area(ring) < 0 or not polygons:  # clockwise: a new outer ring
            polygons.append([ring[::-1]])
        else:
            polygons[-1].append(ring[::-1])
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def _signed_area(ring: list[list[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))
