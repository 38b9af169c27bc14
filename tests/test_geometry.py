"""Esri and GeoJSON geometries to valid lon/lat MultiPolygons: rings, holes, curves, repairs."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon

from zoningsync.geometry import (
    GeometryRejected,
    Shape,
    build_multipolygons,
    packed_esri_rings,
    read_shape,
    read_shapes,
)
from zoningsync.records import QuarantineReason, RawJson

Ring = list[list[float]]


def square(x: float, y: float, size: float, clockwise: bool = True) -> Ring:
    """An Esri ring: clockwise for an outer ring, counter-clockwise for a hole."""
    ring = [[x, y], [x, y + size], [x + size, y + size], [x + size, y], [x, y]]
    return ring if clockwise else ring[::-1]


def esri(*rings: list[list[Any]]) -> MultiPolygon:
    """The one geometry an Esri polygon of these rings becomes (lon/lat, no transform)."""
    built = build_multipolygons([read_shape({"rings": list(rings)}, "esrijson")], None)
    assert not built.problems, built.problems
    geom: MultiPolygon = built.geoms[0]
    return geom


def problem(geometry: Any, geometry_format: str = "esrijson"
            ) -> tuple[QuarantineReason, str]:
    built = build_multipolygons([read_shape(geometry, geometry_format)], None)
    assert built.geoms[0] is None
    return built.problems[0]


def test_a_single_ring_becomes_a_multipolygon() -> None:
    shape = esri(square(1, 1, 1))
    assert shape.geom_type == "MultiPolygon"
    assert shape.area == pytest.approx(1)


def test_a_hole_goes_into_the_outer_ring_that_contains_it() -> None:
    shape = esri(square(0, 0, 10), square(2, 2, 2, clockwise=False))
    [polygon] = shape.geoms
    assert len(polygon.interiors) == 1
    assert shape.area == pytest.approx(96)


def test_two_outer_rings_each_keep_their_own_hole() -> None:
    shape = esri(square(0, 0, 10), square(20, 0, 10), square(22, 2, 2, clockwise=False),
                 square(2, 2, 2, clockwise=False))
    assert len(shape.geoms) == 2
    for polygon in shape.geoms:
        [hole] = polygon.interiors
        assert shapely.Polygon(polygon.exterior).contains(shapely.Polygon(hole))
    assert shape.area == pytest.approx(192)


def test_a_hole_goes_into_the_smallest_outer_ring_containing_it() -> None:
    # An island inside a lake inside a parcel: the island's hole belongs to the island.
    shape = esri(square(0, 0, 20), square(5, 5, 10, clockwise=False), square(7, 7, 6),
                 square(9, 9, 2, clockwise=False))
    assert shape.area == pytest.approx(400 - 100 + 36 - 4)
    assert sorted(len(p.interiors) for p in shape.geoms) == [1, 1]


def test_a_counter_clockwise_ring_outside_every_outer_ring_is_an_outer_ring() -> None:
    shape = esri(square(0, 0, 10), square(50, 50, 5, clockwise=False))
    assert len(shape.geoms) == 2
    assert shape.area == pytest.approx(125)


def test_a_lone_counter_clockwise_ring_is_an_outer_ring() -> None:
    assert esri(square(0, 0, 3, clockwise=False)).area == pytest.approx(9)


def test_unclosed_rings_are_closed() -> None:
    assert esri([[0, 0], [0, 1], [1, 1], [1, 0]]).area == pytest.approx(1)


def test_z_and_m_values_are_ignored() -> None:
    ring = [[x, y, 100.0, None] for x, y in square(0, 0, 2)]
    shape = esri(ring)
    assert shape.area == pytest.approx(4)
    assert not shape.has_z


def test_a_zero_area_ring_is_kept_as_an_outer_ring_then_rejected_with_its_reason() -> None:
    reason, detail = problem({"rings": [[[0, 0], [1, 1], [2, 2], [0, 0]]]})
    assert reason is QuarantineReason.UNREPAIRABLE_GEOMETRY
    assert "no area remains" in detail


def test_a_zero_area_ring_beside_a_real_one_is_repaired_away() -> None:
    built = build_multipolygons(
        [read_shape({"rings": [square(0, 0, 1), [[5, 5], [6, 6], [7, 7], [5, 5]]]},
                    "esrijson")], None)
    assert built.geoms[0].area == pytest.approx(1)
    assert built.repaired[0]


def test_a_ring_of_two_distinct_points_says_so() -> None:
    reason, detail = problem({"rings": [[[0, 0], [1, 1], [0, 0]]]})
    assert reason is QuarantineReason.UNREPAIRABLE_GEOMETRY
    assert "ring 0 has 2 distinct points" in detail


def test_a_degenerate_ring_beside_a_good_one_is_dropped_and_counted_as_a_repair() -> None:
    built = build_multipolygons(
        [read_shape({"rings": [[[5, 5], [6, 6], [5, 5]], square(0, 0, 1)]}, "esrijson")], None)
    assert built.geoms[0].area == pytest.approx(1)
    assert built.repaired[0]


def test_a_bow_tie_is_repaired_into_two_triangles() -> None:
    built = build_multipolygons(
        [read_shape({"rings": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "esrijson")], None)
    geom = built.geoms[0]
    assert built.repaired[0]
    assert geom.is_valid and geom.geom_type == "MultiPolygon"
    assert len(geom.geoms) == 2 and geom.area == pytest.approx(0.5)


def test_coordinates_are_snapped_to_a_1e7_degree_grid() -> None:
    shape = esri([[0.123456789, 0.1], [0.1, 0.2], [0.2, 0.2], [0.2, 0.1], [0.123456789, 0.1]])
    coords = shapely.get_coordinates(shape)
    assert np.array_equal(coords, np.round(coords, 7))
    assert 0.1234568 in coords[:, 0]


def test_a_polygon_smaller_than_the_grid_collapses_and_is_rejected() -> None:
    tiny = square(10.00000001, 10.00000001, 1e-9)
    reason, _ = problem({"rings": [tiny]})
    assert reason is QuarantineReason.UNREPAIRABLE_GEOMETRY


def test_equal_shapes_with_rings_in_another_start_order_normalize_alike() -> None:
    ring = square(0, 0, 1)
    rotated = [*ring[2:-1], *ring[:3]]
    assert shapely.to_wkb(esri(ring)) == shapely.to_wkb(esri(rotated))


def test_circular_arcs_are_densified() -> None:
    # A half disc: a straight edge from (1, 0) to (-1, 0), then an arc back through (0, -1).
    curve = {"curveRings": [[[1, 0], [-1, 0], {"c": [[1, 0], [0, -1]]}]]}
    shape = build_multipolygons([read_shape(curve, "esrijson")], None).geoms[0]
    assert len(shapely.get_coordinates(shape)) > 20
    assert shape.area == pytest.approx(np.pi / 2, rel=2e-3)
    assert shape.bounds == pytest.approx((-1, -1, 1, 0), abs=1e-6)


def test_bezier_curves_are_densified() -> None:
    curve = {"curveRings": [[[0, 0], {"b": [[1, 0], [0, -1], [1, -1]]}, [0, 0]]]}
    shape = build_multipolygons([read_shape(curve, "esrijson")], None).geoms[0]
    assert len(shapely.get_coordinates(shape)) > 20
    assert shape.bounds[1] < -0.5


def test_elliptic_arcs_are_unsupported_curves() -> None:
    curve = {"curveRings": [[[0, 0], {"a": [[1, 1], [0.5, 0.5], 0, 1, 0, 0, 1]}, [0, 0]]]}
    with pytest.raises(GeometryRejected) as raised:
        read_shape(curve, "esrijson")
    assert raised.value.reason is QuarantineReason.UNSUPPORTED_CURVE


@pytest.mark.parametrize(("geometry", "reason"), [
    (None, QuarantineReason.NULL_GEOMETRY),
    ({}, QuarantineReason.NULL_GEOMETRY),
    ({"rings": []}, QuarantineReason.NULL_GEOMETRY),
    ({"rings": [[]]}, QuarantineReason.NULL_GEOMETRY),
    ({"x": 1, "y": 2}, QuarantineReason.NON_POLYGONAL),
    ({"points": [[1, 2]]}, QuarantineReason.NON_POLYGONAL),
    ({"paths": [[[0, 0], [1, 1]]]}, QuarantineReason.NON_POLYGONAL),
    ({"rings": "nope"}, QuarantineReason.PARSE_ERROR),
    ({"envelope": 1}, QuarantineReason.PARSE_ERROR),
])
def test_esri_geometries_without_area_are_refused_with_their_reason(
        geometry: Any, reason: QuarantineReason) -> None:
    with pytest.raises(GeometryRejected) as raised:
        read_shape(geometry, "esrijson")
    assert raised.value.reason is reason
    assert raised.value.detail


def test_geojson_polygons_keep_their_declared_holes() -> None:
    outer = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[2, 2], [2, 4], [4, 4], [4, 2], [2, 2]]
    geometry = {"type": "MultiPolygon",
                "coordinates": [[outer, hole], [[[20, 0], [21, 0], [21, 1], [20, 0]]]]}
    shape = build_multipolygons([read_shape(geometry, "geojson")], None).geoms[0]
    assert len(shape.geoms) == 2
    assert shape.area == pytest.approx(96.5)


@pytest.mark.parametrize(("geometry", "reason"), [
    ({"type": "Point", "coordinates": [1, 2]}, QuarantineReason.NON_POLYGONAL),
    ({"type": "LineString", "coordinates": [[1, 2], [3, 4]]}, QuarantineReason.NON_POLYGONAL),
    ({"type": "Polygon", "coordinates": []}, QuarantineReason.NULL_GEOMETRY),
    ({"type": "Blob"}, QuarantineReason.PARSE_ERROR),
])
def test_geojson_geometries_without_area_are_refused(geometry: Any,
                                                     reason: QuarantineReason) -> None:
    with pytest.raises(GeometryRejected) as raised:
        read_shape(geometry, "geojson")
    assert raised.value.reason is reason


def test_non_numeric_coordinates_spoil_only_their_own_shape() -> None:
    shapes = [read_shape({"rings": [square(0, 0, 1)]}, "esrijson"),
              read_shape({"rings": [[["a", "b"], ["c", "d"], ["e", "f"], ["a", "b"]]]},
                         "esrijson"),
              read_shape({"rings": [[[0, 0], [0, None], [1, 1], [0, 0]]]}, "esrijson")]
    built = build_multipolygons(shapes, None)
    assert built.geoms[0] is not None
    assert built.problems[1][0] is QuarantineReason.PARSE_ERROR
    assert built.problems[2][0] is QuarantineReason.PARSE_ERROR


def test_points_outside_lon_lat_range_are_out_of_range() -> None:
    reason, detail = problem({"rings": [square(179.5, 0, 1)]})
    assert reason is QuarantineReason.OUT_OF_RANGE
    assert "180.5" in detail


def test_a_transform_that_fails_gives_out_of_range() -> None:
    def broken(x: Any, y: Any) -> tuple[Any, Any]:
        return np.full_like(x, np.inf), y

    built = build_multipolygons([read_shape({"rings": [square(0, 0, 1)]}, "esrijson")],
                                broken)
    assert built.problems[0][0] is QuarantineReason.OUT_OF_RANGE


# -- Esri rings read from their JSON text --------------------------------------------------

coordinate = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-10**15, 10**15))
ring_strategy = st.lists(st.tuples(coordinate, coordinate).map(list), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ring_strategy, min_size=1, max_size=4), min_size=1, max_size=8))
def test_rings_read_from_json_text_are_the_decoded_rings(polygons: list[list[Ring]]) -> None:
    texts = [orjson.dumps({"rings": rings}) for rings in polygons]
    for rings, packed in zip(polygons, packed_esri_rings(texts), strict=True):
        assert packed is not None
        assert len(packed) == len(rings)
        for ring, array in zip(rings, packed, strict=True):
            assert np.array_equal(array, np.array(ring, dtype=np.float64))


@pytest.mark.parametrize("text", [
    b'{"rings":[[[1,2,3],[4,5,6],[1,2,3]]]}',  # Z values
    b'{"rings":[[[1,2],[3,4]],[]]}',  # an empty ring
    b'{"rings":[[[1,2],[]]]}',  # an empty point
    b'{"rings":[[[1],[2,3]]]}',  # a point of one number
    b'{"rings":[[[[1,2]]]]}',  # nested too deep
    b'{"rings": [[[1,2],[3,4]]]}',  # spaced
    b'{"curveRings":[[[1,2],{"c":[[3,4],[2,3]]}]]}',
    b'{"rings":[[[1,2],[3,4]]],"spatialReference":{"wkid":4326}}',
    b'{"rings":[[[1 2,3],[3,4]]]}',  # not JSON
])
def test_rings_of_any_other_form_are_left_to_the_json_decoder(text: bytes) -> None:
    plain = b'{"rings":[[[1,2],[3,4],[5,6],[1,2]]]}'
    packed = packed_esri_rings([plain, text, plain])
    assert packed[1] is None
    assert [a.tolist() for a in packed[0] or []] == [[[1, 2], [3, 4], [5, 6], [1, 2]]]


def test_a_page_of_json_text_builds_the_geometries_its_decoded_json_builds() -> None:
    rings = [square(0, 0, 10), square(2, 2, 2, clockwise=False), square(20, 20, 1)]
    texts = [RawJson(orjson.dumps({"rings": rings})),
             RawJson(b'{"rings": ' + orjson.dumps(rings) + b"}"),  # spaced: decoded
             RawJson(orjson.dumps({"rings": [[[0, 0], [1, 1], [0, 0]]]})), None]
    shapes = read_shapes(texts, "esrijson")
    assert [isinstance(s, Shape) for s in shapes] == [True, True, True, False]
    assert shapes[3] == (QuarantineReason.NULL_GEOMETRY, "the record has no geometry")
    built = build_multipolygons([s for s in shapes if isinstance(s, Shape)], None)
    decoded = build_multipolygons(
        [read_shape(orjson.loads(bytes(t)), "esrijson") for t in texts[:3] if t], None)
    assert list(built.geoms[:2]) == list(decoded.geoms[:2]) == [esri(*rings)] * 2
    assert built.problems == decoded.problems and 2 in built.problems


def test_reading_a_page_with_rejections_leaves_nothing_for_the_cyclic_collector() -> None:
    """A cycle would keep the page's rings until a collection, which comes rarely."""
    page = [RawJson(b'{"rings":[[[1,2],[3,4],[1,2]]]}'), None,
            RawJson(b'{"paths":[[[0,0],[1,1]]]}'), {"rings": []}]
    gc.collect()
    gc.disable()
    try:
        shapes = read_shapes(page, "esrijson")
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert [isinstance(s, Shape) for s in shapes] == [True, False, False, False]
