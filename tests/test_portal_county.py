"""The generated county looks like a real one: its shapes, its spread, its districts."""

from __future__ import annotations

from collections import Counter

import h3
import numpy as np
import pytest
import shapely
from shapely.geometry.base import BaseGeometry

from zoningsync.portal.county import County
from zoningsync.portal.shapes import Rings, to_geojson


def footprint(rings: Rings | None) -> BaseGeometry | None:
    geojson = to_geojson(rings)
    return None if geojson is None else shapely.geometry.shape(geojson)


@pytest.fixture(scope="module")
def county() -> County:
    return County(20_000, seed=1)


@pytest.fixture(scope="module")
def footprints(county: County) -> list[BaseGeometry | None]:
    rows = np.arange(county.parcels.size, dtype=np.int64)
    return [footprint(rings) for rings in county.rings(county.parcels, rows)]


def share(count: int, total: int = 20_000) -> float:
    return count / total


def test_most_parcels_are_simple_polygons_of_4_to_12_vertices(
        footprints: list[BaseGeometry | None]) -> None:
    vertices = Counter(len(g.exterior.coords) - 1 for g in footprints
                       if isinstance(g, shapely.Polygon) and not g.interiors and g.is_valid)
    assert min(vertices) == 4 and max(vertices) == 12
    assert share(sum(vertices.values())) > 0.9


def test_the_quirky_shapes_come_in_realistic_shares(
        footprints: list[BaseGeometry | None]) -> None:
    holes = sum(isinstance(g, shapely.Polygon) and len(g.interiors) == 1 for g in footprints)
    multipart = sum(isinstance(g, shapely.MultiPolygon) for g in footprints)
    invalid = sum(g is not None and not g.is_valid for g in footprints)
    nulls = sum(g is None for g in footprints)
    assert 0.02 < share(holes) < 0.04
    assert 0.01 < share(multipart) < 0.03
    assert 1 <= invalid <= 30  # bow-ties, ~0.05%
    assert 1 <= nulls <= 15  # ~0.02%


def test_stacked_condos_share_one_footprint_under_distinct_pins(
        county: County, footprints: list[BaseGeometry | None]) -> None:
    stacks = Counter(g.wkb for g in footprints if g is not None)
    stacked = sum(n for n in stacks.values() if n > 1)
    assert 0.005 < share(stacked) < 0.02
    pins = county.parcels.columns["PIN"].serve(np.arange(county.parcels.size))
    assert len(set(pins)) == len(pins)


def test_the_county_spans_a_few_hundred_h3_cells(
        footprints: list[BaseGeometry | None]) -> None:
    cells = {h3.latlng_to_cell(g.centroid.y, g.centroid.x, 7) for g in footprints if g}
    assert 150 < len(cells) < 1000


def test_zoning_districts_tile_the_county_without_overlap(county: County) -> None:
    layer = county.districts
    rings = county.rings(layer, np.arange(layer.size, dtype=np.int64))
    polygons = [g for g in map(footprint, rings) if g is not None]
    union = shapely.union_all(polygons)
    assert 200 <= len(polygons) <= 500
    assert isinstance(union, shapely.Polygon) and not union.interiors
    assert union.area == pytest.approx(sum(p.area for p in polygons), rel=1e-9)


def test_generation_is_deterministic_for_a_seed() -> None:
    a, b, c = County(3000, seed=4), County(3000, seed=4), County(3000, seed=5)
    rows = np.arange(3000, dtype=np.int64)
    names = list(a.parcels.columns)
    assert a.parcels.attributes(rows, names) == b.parcels.attributes(rows, names)
    assert a.rings(a.parcels, rows) == b.rings(b.parcels, rows)
    assert a.parcels.attributes(rows, names) != c.parcels.attributes(rows, names)
    assert a.publish(0.02, seed=1) == b.publish(0.02, seed=1)


def test_a_parcel_costs_about_a_hundred_bytes() -> None:
    county = County(100_000, seed=1)
    stored = sum(a.nbytes for a in county.parcels.data.values()) + county.parcels.deleted.nbytes
    assert stored / county.parcels.size < 120


def test_unsupported_crs_and_empty_counties_are_refused() -> None:
    with pytest.raises(ValueError, match="crs"):
        County(10, crs=3857)
    with pytest.raises(ValueError, match="parcel"):
        County(0)
