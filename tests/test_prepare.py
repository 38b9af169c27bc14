"""A page through the geometry stage: real county parcels, rejections, counts, hashes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.portal_helpers import FIXTURES
from zoningsync.chunks import chunks_of, row_hash
from zoningsync.prepare import prepare_fetched, prepare_page
from zoningsync.records import (
    CrsSpec,
    FetchedPage,
    Page,
    QuarantineReason,
    RawJson,
    SourceRecord,
)

WGS84 = CrsSpec(wkid=4326, latest_wkid=4326)
NC_FEET = CrsSpec(wkid=102719, latest_wkid=2264)


def record(geometry: Any, key: str | None = "K1", oid: int = 1,
           attrs: dict[str, Any] | None = None) -> SourceRecord:
    return SourceRecord(oid=oid, source_key=key, fields={"parcel_id": key}, attrs=attrs or {},
                        geometry=geometry, raw={"geometry": geometry, "key": key})


def page_of(*records: SourceRecord, crs: CrsSpec | None = WGS84) -> Page:
    return Page("p1", list(records), crs)


def square(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y], [x, y + size], [x + size, y + size], [x + size, y], [x, y]]


def fixture_page(name: str, oid_field: str, key_field: str) -> Page:
    answer = json.loads((FIXTURES / name).read_text())
    records = [SourceRecord(oid=f["attributes"].get(oid_field),
                            source_key=str(f["attributes"][key_field] or f"oid-{i}"),
                            fields={}, attrs=f["attributes"], geometry=f["geometry"], raw=f)
               for i, f in enumerate(answer["features"])]
    return Page(name, records, CrsSpec.from_esri(answer["spatialReference"]))


def test_kent_parcels_in_michigan_state_plane_land_in_kent_county() -> None:
    prepared = prepare_page(fixture_page("us-mi-kent/us-mi-kent-0.json", "OBJECTID", "PNUM"),
                            h3_resolution=9)
    assert prepared.rejected == []
    assert len(prepared.rows) == 15
    for row in prepared.rows:
        geom = shapely.from_wkb(row.wkb)
        assert geom.geom_type == "MultiPolygon" and geom.is_valid
        x0, y0, x1, y1 = geom.bounds
        assert -85.80 <= x0 <= x1 <= -85.70
        assert 43.28 <= y0 <= y1 <= 43.30


def test_a_fetched_page_is_read_by_its_producers_reader_then_prepared() -> None:
    page = fixture_page("us-mi-kent/us-mi-kent-0.json", "OBJECTID", "PNUM")
    features = [record.raw for record in page.records]
    by_feature = {id(record.raw): record for record in page.records}

    def read(answer: Any) -> list[SourceRecord]:
        return [by_feature[id(feature)] for feature in answer]

    fetched = FetchedPage(page.page_id, features, page.crs, read)
    assert (prepare_fetched(fetched, h3_resolution=9)
            == prepare_page(page, h3_resolution=9))


def test_geometries_in_json_text_prepare_as_their_decoded_json() -> None:
    page = fixture_page("us-mi-kent/us-mi-kent-0.json", "OBJECTID", "PNUM")
    as_text = Page(page.page_id, [
        dataclasses.replace(r, geometry=RawJson(orjson.dumps(r.geometry)))
        for r in page.records], page.crs)
    assert prepare_page(as_text, h3_resolution=9).rows == prepare_page(
        page, h3_resolution=9).rows


def test_madisons_degenerate_ring_is_quarantined_with_a_reason() -> None:
    page = fixture_page("us-ms-madison/us-ms-madison-0.json", "OBJECTID", "Landhook")
    prepared = prepare_page(page, h3_resolution=9)
    assert prepared.rows == []
    [rejected] = prepared.rejected
    assert rejected.reason is QuarantineReason.UNREPAIRABLE_GEOMETRY
    assert "ring 0 has 2 distinct points" in rejected.detail
    assert rejected.raw is page.records[0].raw


def test_a_state_plane_parcel_is_stored_in_lon_lat_near_raleigh() -> None:
    [row] = prepare_page(page_of(record({"rings": [square(2_100_000, 740_000, 100)]}),
                                 crs=NC_FEET), h3_resolution=9).rows
    point = shapely.from_wkb(row.wkb).centroid
    assert point.x == pytest.approx(-78.663, abs=0.001)
    assert point.y == pytest.approx(35.783, abs=0.001)


def test_a_row_carries_its_chunk_wkb_and_hash() -> None:
    rec = record({"rings": [square(-78.64, 35.78, 0.001)]}, attrs={"ZONING": "R-4"})
    [row] = prepare_page(page_of(rec), h3_resolution=8).rows
    geom = shapely.from_wkb(row.wkb)
    inside = shapely.point_on_surface(geom)
    assert [row.chunk] == chunks_of([inside.x], [inside.y], 8)
    assert row.row_hash == row_hash(rec.fields, rec.attrs, row.wkb)
    assert json.loads(row.attrs_json) == rec.attrs
    assert row.source_key == "K1" and row.oid == 1
    assert row.wkb[0] == 1  # little-endian WKB, 2-D
    assert shapely.get_coordinate_dimension(geom) == 2


def test_attributes_that_are_not_json_ready_cost_only_their_record() -> None:
    first, bad, last = (record({"rings": [square(-78.64 + i / 100, 35.78, 0.001)]},
                               key=f"K{i}", oid=i, attrs=attrs)
                        for i, attrs in enumerate([{"A": 1}, {"A": 2**70}, {"A": 3}]))
    prepared = prepare_page(page_of(first, bad, last), h3_resolution=8)
    assert [row.source_key for row in prepared.rows] == ["K0", "K2"]
    assert [row.row_hash for row in prepared.rows] == [
        prepare_page(page_of(alone), h3_resolution=8).rows[0].row_hash for alone in (first, last)]
    [rejected] = prepared.rejected
    assert (rejected.source_key, rejected.reason) == ("K1", QuarantineReason.PARSE_ERROR)
    assert rejected.detail.startswith("attributes are not JSON-ready")


def test_a_bow_tie_is_repaired_stored_and_counted() -> None:
    bow_tie = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
    geometry = {"rings": [[[x * 0.001, y * 0.001] for x, y in bow_tie]]}
    prepared = prepare_page(page_of(record(geometry), record({"rings": [square(0, 0, 0.001)]},
                                                             key="K2")), h3_resolution=9)
    assert len(prepared.rows) == 2 and prepared.repaired == 1
    assert all(shapely.from_wkb(row.wkb).is_valid for row in prepared.rows)


def test_curve_rings_with_circular_arcs_are_stored_densified() -> None:
    curve = {"curveRings": [[[0, 0], [0, 0.001], {"c": [[0.002, 0.001], [0.001, 0.002]]},
                             [0.002, 0], [0, 0]]]}
    [row] = prepare_page(page_of(record(curve)), h3_resolution=9).rows
    assert len(shapely.get_coordinates(shapely.from_wkb(row.wkb))) > 20


def test_a_record_without_key_is_quarantined_before_its_geometry_is_read() -> None:
    prepared = prepare_page(page_of(record(None, key=None), record(None, key="")),
                            h3_resolution=9)
    assert [r.reason for r in prepared.rejected] == [QuarantineReason.MISSING_KEY] * 2


def test_an_unknown_crs_rejects_every_record_and_names_what_was_given() -> None:
    prepared = prepare_page(page_of(record({"rings": [square(0, 0, 1)]}),
                                    record({"rings": [square(0, 0, 1)]}, key="K2"),
                                    crs=CrsSpec(wkid=999999)), h3_resolution=9)
    assert [r.reason for r in prepared.rejected] == [QuarantineReason.UNKNOWN_CRS] * 2
    assert "999999" in prepared.rejected[0].detail


def test_an_esri_page_without_spatial_reference_is_unknown_crs() -> None:
    prepared = prepare_page(page_of(record({"rings": [square(0, 0, 1)]}), crs=None),
                            h3_resolution=9)
    assert [r.reason for r in prepared.rejected] == [QuarantineReason.UNKNOWN_CRS]


def test_a_geojson_page_without_spatial_reference_is_wgs84() -> None:
    geometry = {"type": "Polygon", "coordinates": [square(-78.6, 35.8, 0.001)[::-1]]}
    page = Page("p", [record(geometry)], None, geometry_format="geojson")
    [row] = prepare_page(page, h3_resolution=9).rows
    assert shapely.from_wkb(row.wkb).bounds[0] == pytest.approx(-78.6)


def test_out_of_range_coordinates_are_rejected() -> None:
    [rejected] = prepare_page(page_of(record({"rings": [square(500, 500, 1)]})),
                              h3_resolution=9).rejected
    assert rejected.reason is QuarantineReason.OUT_OF_RANGE


def test_non_polygonal_geometry_is_rejected() -> None:
    [rejected] = prepare_page(page_of(record({"paths": [[[0, 0], [1, 1]]]})),
                              h3_resolution=9).rejected
    assert rejected.reason is QuarantineReason.NON_POLYGONAL


def test_a_page_whose_only_rings_are_not_numbers_is_a_parse_error() -> None:
    page = page_of(record({"rings": [[["a", "b"], [1, 2], [3, 4], [1, 2]]]}))
    [rejected] = prepare_page(page, h3_resolution=9).rejected
    assert rejected.reason is QuarantineReason.PARSE_ERROR


def test_attributes_that_are_not_json_ready_are_a_parse_error() -> None:
    rec = record({"rings": [square(0, 0, 0.001)]}, attrs={"huge": 2**70})
    [rejected] = prepare_page(page_of(rec), h3_resolution=9).rejected
    assert rejected.reason is QuarantineReason.PARSE_ERROR


def test_the_oid_never_reaches_the_hash() -> None:
    rows = prepare_page(page_of(record({"rings": [square(0, 0, 0.001)]}, oid=1),
                                record({"rings": [square(0, 0, 0.001)]}, oid=999)),
                        h3_resolution=9).rows
    assert rows[0].row_hash == rows[1].row_hash


def test_a_move_below_the_grid_keeps_the_hash_and_a_move_above_changes_it() -> None:
    def stored_hash(dx: float) -> bytes:
        ring = [[x + dx, y] for x, y in square(10, 10, 0.001)]
        [row] = prepare_page(page_of(record({"rings": [ring]})), h3_resolution=9).rows
        return row.row_hash

    assert stored_hash(0) == stored_hash(1e-9)
    assert stored_hash(0) != stored_hash(3e-7)


# -- the count invariant --------------------------------------------------------------------

good = st.builds(lambda x, y, s: {"rings": [square(x, y, s)]},
                 st.floats(-170, 170), st.floats(-80, 80), st.floats(1e-4, 0.01))
bad: st.SearchStrategy[Any] = st.sampled_from([
    None, {}, {"rings": []}, {"x": 1, "y": 2}, {"paths": [[[0, 0], [1, 1]]]},
    {"rings": [[[0, 0], [1, 1], [0, 0]]]}, {"rings": [[[0, 0], [1, 1], [2, 2], [0, 0]]]},
    {"rings": [square(500, 0, 1)]}, {"rings": [[["a", "b"], [1, 2], [3, 4], [1, 2]]]},
    {"rings": [[[0, 0], [0.001, 0.001], [0.001, 0], [0, 0.001], [0, 0]]]},
    {"curveRings": [[[0, 0], {"a": []}, [0, 0]]]}, {"rings": "x"}, {"envelope": []},
])
records_strategy = st.lists(
    st.tuples(st.one_of(good, bad), st.sampled_from(["k", None, ""])), max_size=30)


@settings(max_examples=60, deadline=None)
@given(records_strategy, st.sampled_from([WGS84, NC_FEET, CrsSpec(wkid=1), None]))
def test_every_record_ends_as_a_row_or_a_rejection(
        mix: list[tuple[Any, str | None]], crs: CrsSpec | None) -> None:
    records = [record(geometry, key=f"{key}{i}" if key else key, oid=i)
               for i, (geometry, key) in enumerate(mix)]
    prepared = prepare_page(page_of(*records, crs=crs), h3_resolution=9)
    assert len(prepared.rows) + len(prepared.rejected) == len(records)
    assert all(r.detail for r in prepared.rejected)
    assert prepared.repaired <= len(prepared.rows)
    seen = sorted([row.oid or 0 for row in prepared.rows]
                  + [r.oid or 0 for r in prepared.rejected])
    assert seen == list(range(len(records)))
