"""The geometry stage on real recorded parcels and on hand-made edge cases."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from tests.portal_helpers import FIXTURES
from zoningsync.prepare import chunk_hash, esri_polygon, prepare_page, resolve_crs, row_hash
from zoningsync.records import CrsSpec, Page, QuarantineReason, SourceRecord

RALEIGH_2264 = CrsSpec(wkid=2264, latest_wkid=2264)


def record(geometry: Any, key: str | None = "K1", attrs: dict[str, Any] | None = None
           ) -> SourceRecord:
    return SourceRecord(oid=1, source_key=key, fields={}, attrs=attrs or {},
                        geometry=geometry, raw={"geometry": geometry})


WGS84 = CrsSpec(4326, 4326)


def page_of(*records: SourceRecord, crs: CrsSpec | None = WGS84) -> Page:
    return Page("p", list(records), crs)


def square(x: float, y: float, size: float, clockwise: bool = True) -> list[list[float]]:
    ring = [[x, y], [x, y + size], [x + size, y + size], [x + size, y], [x, y]]
    return ring if clockwise else ring[::-1]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_kent_parcels_in_michigan_state_plane_land_in_kent_county() -> None:
    answer = load("us-mi-kent/us-mi-kent-0.json")
    records = [SourceRecord(f["attributes"]["OBJECTID"], f["attributes"]["PNUM"], {},
                            f["attributes"], f["geometry"], f)
               for f in answer["features"]]
    prepared = prepare_page(Page("p", records, CrsSpec.from_esri(answer["spatialReference"])),
                            h3_resolution=7)
    assert len(prepared.rows) == 15
    for row in prepared.rows:
        x0, y0, x1, y1 = shapely.from_wkb(row.wkb).bounds
        assert -85.80 <= x0 <= x1 <= -85.70
        assert 43.28 <= y0 <= y1 <= 43.30


def test_madisons_degenerate_ring_is_quarantined_with_a_reason() -> None:
    answer = load("us-ms-madison/us-ms-madison-0.json")
    feature = answer["features"][0]
    prepared = prepare_page(Page("p", [record(feature["geometry"])],
                                 CrsSpec.from_esri(answer["spatialReference"])),
                            h3_resolution=7)
    assert prepared.rows == []
    [rejected] = prepared.rejected
    assert rejected.reason is QuarantineReason.UNREPAIRABLE_GEOMETRY
    assert "2 distinct points" in rejected.detail


@pytest.mark.parametrize(("wkid", "latest"), [(102695, 2255), (102643, 2227), (102100, 3857),
                                              (102100, None), (2264, 2264)])
def test_esri_and_epsg_codes_from_metadata_resolve(wkid: int, latest: int | None) -> None:
    assert resolve_crs(CrsSpec(wkid=wkid, latest_wkid=latest)) is not None


def test_a_state_plane_point_reprojects_near_raleigh() -> None:
    ring = square(2_100_000, 740_000, 100)
    [row] = prepare_page(page_of(record({"rings": [ring]}), crs=RALEIGH_2264),
                         h3_resolution=7).rows
    point = shapely.from_wkb(row.wkb).centroid
    assert -78.7 < point.x < -78.5 and 35.7 < point.y < 35.9


def test_a_hole_goes_into_the_outer_ring_that_contains_it() -> None:
    shape = esri_polygon([square(0, 0, 10), square(2, 2, 2, clockwise=False)])
    assert shape.geom_type == "Polygon"
    assert len(shape.interiors) == 1
    assert shape.area == pytest.approx(96)


def test_two_outer_rings_each_keep_their_own_hole() -> None:
    shape = esri_polygon([square(0, 0, 10), square(20, 0, 10),
                          square(22, 2, 2, clockwise=False), square(2, 2, 2, clockwise=False)])
    assert shape.geom_type == "MultiPolygon"
    assert sorted(len(p.interiors) for p in shape.geoms) == [1, 1]


def test_a_counter_clockwise_ring_outside_every_outer_ring_is_an_outer_ring() -> None:
    shape = esri_polygon([square(0, 0, 10), square(50, 50, 5, clockwise=False)])
    assert shape.geom_type == "MultiPolygon"
    assert shape.area == pytest.approx(125)


def test_a_bow_tie_is_repaired_stored_and_counted() -> None:
    bow_tie = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
    prepared = prepare_page(page_of(record({"rings": [[[x * 0.001, y * 0.001]
                                                       for x, y in bow_tie]]})),
                            h3_resolution=7)
    assert len(prepared.rows) == 1 and prepared.repaired == 1
    assert shapely.from_wkb(prepared.rows[0].wkb).is_valid


def test_curve_rings_with_circular_arcs_are_densified() -> None:
    curve = {"curveRings": [[[0, 0], [0, 0.001], {"c": [[0.002, 0.001], [0.001, 0.002]]},
                             [0.002, 0], [0, 0]]]}
    [row] = prepare_page(page_of(record(curve)), h3_resolution=7).rows
    assert len(shapely.get_coordinates(shapely.from_wkb(row.wkb))) > 20


def test_elliptic_arcs_are_quarantined_as_unsupported_curves() -> None:
    curve = {"curveRings": [[[0, 0], {"a": [[1, 1], [0.5, 0.5], 0, 1, 0, 0, 1]}, [0, 0]]]}
    [rejected] = prepare_page(page_of(record(curve)), h3_resolution=7).rejected
    assert rejected.reason is QuarantineReason.UNSUPPORTED_CURVE


@pytest.mark.parametrize(("geometry", "reason"), [
    (None, QuarantineReason.NULL_GEOMETRY),
    ({}, QuarantineReason.NULL_GEOMETRY),
    ({"rings": []}, QuarantineReason.NULL_GEOMETRY),
    ({"x": 1, "y": 2}, QuarantineReason.NON_POLYGONAL),
    ({"paths": [[[0, 0], [1, 1]]]}, QuarantineReason.NON_POLYGONAL),
    ({"rings": [square(500, 500, 1)]}, QuarantineReason.OUT_OF_RANGE),
    ({"rings": [[[0, 0], [1, 1], [0, 0], [1, 1]]]}, QuarantineReason.UNREPAIRABLE_GEOMETRY),
])
def test_each_unusable_geometry_gets_its_reason(geometry: Any,
                                                reason: QuarantineReason) -> None:
    [rejected] = prepare_page(page_of(record(geometry)), h3_resolution=7).rejected
    assert rejected.reason is reason
    assert rejected.detail


def test_a_record_without_key_is_quarantined_first() -> None:
    [rejected] = prepare_page(page_of(record({"rings": [square(0, 0, 1)]}, key=None)),
                              h3_resolution=7).rejected
    assert rejected.reason is QuarantineReason.MISSING_KEY


def test_an_unknown_crs_rejects_the_whole_page_with_its_reason() -> None:
    prepared = prepare_page(page_of(record({"rings": [square(0, 0, 1)]}),
                                    crs=CrsSpec(wkid=999999)), h3_resolution=7)
    assert [r.reason for r in prepared.rejected] == [QuarantineReason.UNKNOWN_CRS]


# -- hashes ----------------------------------------------------------------------------------

# Upstream JSON is parsed by orjson: integers arrive within the signed/unsigned 64-bit range.
values = st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=8),
                   st.floats(allow_nan=False, allow_infinity=False))
attr_maps = st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=6)


@given(attr_maps)
def test_row_hash_ignores_attribute_order(attrs: dict[str, Any]) -> None:
    reordered = dict(reversed(list(attrs.items())))
    assert row_hash({"parcel_id": "1"}, attrs, b"w") == row_hash({"parcel_id": "1"},
                                                                 reordered, b"w")


@given(attr_maps, st.text(min_size=1, max_size=6), values)
def test_row_hash_changes_with_any_attribute(attrs: dict[str, Any], key: str,
                                             value: Any) -> None:
    changed = {**attrs, key: value}
    if changed != attrs:
        assert row_hash({}, attrs, b"w") != row_hash({}, changed, b"w")


@given(st.binary(min_size=1, max_size=20))
def test_row_hash_changes_with_the_geometry(wkb: bytes) -> None:
    assert row_hash({}, {}, wkb) != row_hash({}, {}, wkb + b"\x00")


@given(st.lists(st.binary(min_size=16, max_size=16), max_size=20), st.randoms())
def test_chunk_hash_ignores_member_order(hashes: list[bytes], rnd: Any) -> None:
    shuffled = hashes[:]
    rnd.shuffle(shuffled)
    assert chunk_hash(hashes) == chunk_hash(shuffled)
    assert chunk_hash(hashes) == hashlib.sha256(b"".join(sorted(hashes))).digest()


@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=20, unique=True))
def test_chunk_hash_changes_when_a_member_leaves(hashes: list[bytes]) -> None:
    assert chunk_hash(hashes) != chunk_hash(hashes[1:])


def test_the_oid_never_reaches_the_hash() -> None:
    a, b = record({"rings": [square(0, 0, 0.001)]}), record({"rings": [square(0, 0, 0.001)]})
    b.oid = 999
    rows = prepare_page(page_of(a, b), h3_resolution=7).rows
    assert rows[0].row_hash == rows[1].row_hash


def test_a_ring_of_non_numbers_is_a_parse_error_and_spares_its_page() -> None:
    good = record({"rings": [square(0, 0, 0.001)]}, key="good")
    bad = record({"rings": [[["a", "b"], ["c", "d"], ["e", "f"], ["a", "b"]]]}, key="bad")
    prepared = prepare_page(page_of(good, bad), h3_resolution=7)
    assert [row.source_key for row in prepared.rows] == ["good"]
    assert [r.reason for r in prepared.rejected] == [QuarantineReason.PARSE_ERROR]
