"""The simulated county portal answers like an ArcGIS 10.9 FeatureServer, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
import shapely
from pyproj import Transformer

from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

WHERE_INVALID = {"error": {"code": 400, "message": "Unable to complete operation.",
                           "details": ["'where' parameter is invalid"]}}


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(1000, seed=3)) as running:
        yield running


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as answer:
        assert answer.status == 200
        return orjson.loads(await answer.read())


async def query(http: aiohttp.ClientSession, portal: RunningPortal, layer: int = 0,
                **params: Any) -> Any:
    return await get(http, portal.layer_url(layer) + "/query", **{"f": "json", **params})


async def all_features(http: aiohttp.ClientSession, portal: RunningPortal, **params: Any
                       ) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = []
    while True:
        answer = await query(http, portal, where="1=1", outFields="*",
                             orderByFields="OBJECTID ASC", resultOffset=len(features),
                             resultRecordCount=2000, **params)
        features.extend(answer["features"])
        if not answer.get("exceededTransferLimit"):
            return features


# -- metadata --------------------------------------------------------------------------


async def test_service_info_lists_parcels_and_zoning_districts(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    info = await get(http, portal.service_url, f="json")
    assert info["currentVersion"] == 10.91
    assert [(layer["id"], layer["name"]) for layer in info["layers"]] == [
        (0, "Parcels"), (1, "Zoning Districts")]


async def test_layer_metadata_describes_a_paginated_edit_tracked_layer(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    meta = await get(http, portal.layer_url(0), f="json")
    assert meta["currentVersion"] == 10.91
    assert (meta["type"], meta["geometryType"]) == ("Feature Layer", "esriGeometryPolygon")
    assert meta["objectIdField"] == "OBJECTID"
    assert meta["maxRecordCount"] == 2000
    assert meta["supportsPagination"] is True
    assert meta["advancedQueryCapabilities"]["supportsPagination"] is True
    assert meta["supportedQueryFormats"] == "JSON, geoJSON"
    assert meta["useStandardizedQueries"] is True
    assert meta["editFieldsInfo"]["editDateField"] == "LAST_EDITED_DATE"
    assert "creationDateField" in meta["editFieldsInfo"]
    assert meta["sourceSpatialReference"] == {"wkid": 4326, "latestWkid": 4326}
    assert meta["extent"]["xmin"] < -78.64 < meta["extent"]["xmax"]
    types = {f["name"]: f["type"] for f in meta["fields"]}
    assert types["OBJECTID"] == "esriFieldTypeOID"
    assert types["PARCEL_PK"] == "esriFieldTypeBigInteger"
    assert types["DEED_DATE"] == types["LAST_EDITED_DATE"] == "esriFieldTypeDate"
    assert types["SALE_DATE"] == "esriFieldTypeDateOnly"
    assert types["REVAL_DATE"] == "esriFieldTypeInteger"
    assert {"PIN", "ZONING", "ZONE_DESC", "OWNER", "SITE_ADDRESS", "CITY", "ACRES",
            "LAND_VAL"} <= set(types)
    assert all("alias" in f for f in meta["fields"])


async def test_the_districts_layer_has_its_own_fields(portal: RunningPortal,
                                                      http: aiohttp.ClientSession) -> None:
    meta = await get(http, portal.layer_url(1), f="json")
    assert meta["name"] == "Zoning Districts"
    assert {"ZONE_CODE", "ZONE_DESC", "ORDINANCE", "EFFECTIVE"} <= {
        f["name"] for f in meta["fields"]}


async def test_pjson_is_indented_json(portal: RunningPortal,
                                      http: aiohttp.ClientSession) -> None:
    async with http.get(portal.layer_url(0), params={"f": "pjson"}) as answer:
        text = await answer.text()
    assert text.startswith("{\n  ")
    assert orjson.loads(text)["name"] == "Parcels"


@pytest.mark.parametrize(("crs", "reference"), [
    (4326, {"wkid": 4326, "latestWkid": 4326}),
    (2264, {"wkid": 2264, "latestWkid": 2264}),
    (102100, {"wkid": 102100, "latestWkid": 3857}),
])
async def test_spatial_references_name_the_layer_crs(http: aiohttp.ClientSession, crs: int,
                                                      reference: dict[str, int]) -> None:
    async with run_portal(County(50, seed=1, crs=crs)) as portal:
        meta = await get(http, portal.layer_url(0), f="json")
        answer = await query(http, portal, where="1=1", resultRecordCount=1)
    assert meta["sourceSpatialReference"] == reference
    assert answer["spatialReference"] == reference


# -- queries ---------------------------------------------------------------------------


async def test_offset_paging_returns_every_object_id_exactly_once(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    oids: list[int] = []
    limits: list[bool] = []
    while True:
        answer = await query(http, portal, where="1=1", outFields="OBJECTID",
                             returnGeometry="false", orderByFields="OBJECTID ASC",
                             resultOffset=len(oids), resultRecordCount=300)
        oids.extend(f["attributes"]["OBJECTID"] for f in answer["features"])
        limits.append(bool(answer.get("exceededTransferLimit")))
        if not limits[-1]:
            break
    assert oids == sorted(set(oids)) and len(oids) == 1000
    assert limits == [True, True, True, False]


async def test_ids_only_and_count_only_agree(portal: RunningPortal,
                                             http: aiohttp.ClientSession) -> None:
    where = "ZONING IN ('R-4', 'R-6') OR ACRES > 0.7"
    ids = await query(http, portal, where=where, returnIdsOnly="true")
    count = await query(http, portal, where=where, returnCountOnly="true")
    assert ids["objectIdFieldName"] == "OBJECTID"
    assert ids["objectIds"] == sorted(ids["objectIds"])
    assert 0 < count["count"] == len(ids["objectIds"]) < 1000


async def test_a_page_is_capped_at_max_record_count(portal: RunningPortal,
                                                    http: aiohttp.ClientSession) -> None:
    portal.behaviours.max_record_count = 120
    answer = await query(http, portal, where="1=1", resultRecordCount=500)
    assert len(answer["features"]) == 120
    assert answer["exceededTransferLimit"] is True


async def test_order_by_descending_reverses_the_object_ids(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    answer = await query(http, portal, where="1=1", outFields="OBJECTID",
                         orderByFields="OBJECTID DESC", resultRecordCount=5)
    assert [f["attributes"]["OBJECTID"] for f in answer["features"]] == [
        1000, 999, 998, 997, 996]


async def test_order_by_a_text_field_sorts_by_its_values(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    answer = await query(http, portal, where="1=1", outFields="ZONING",
                         orderByFields="ZONING ASC, OBJECTID DESC", returnGeometry="false")
    codes = [f["attributes"]["ZONING"] for f in answer["features"]]
    assert codes == sorted(codes)


async def test_out_fields_always_include_the_object_id(portal: RunningPortal,
                                                       http: aiohttp.ClientSession) -> None:
    answer = await query(http, portal, where="1=1", outFields="pin,zoning",
                         resultRecordCount=3)
    assert [f["name"] for f in answer["fields"]] == ["OBJECTID", "PIN", "ZONING"]
    assert set(answer["features"][0]["attributes"]) == {"OBJECTID", "PIN", "ZONING"}


async def test_return_geometry_false_leaves_geometry_out(portal: RunningPortal,
                                                         http: aiohttp.ClientSession) -> None:
    answer = await query(http, portal, where="1=1", returnGeometry="false",
                         resultRecordCount=10)
    assert all("geometry" not in f for f in answer["features"])


async def test_object_ids_select_exactly_those_features(portal: RunningPortal,
                                                        http: aiohttp.ClientSession) -> None:
    answer = await query(http, portal, objectIds="7,3,999,5000", outFields="OBJECTID")
    assert [f["attributes"]["OBJECTID"] for f in answer["features"]] == [3, 7, 999]


async def test_post_forms_are_answered_like_gets(portal: RunningPortal,
                                                 http: aiohttp.ClientSession) -> None:
    form = {"f": "json", "objectIds": ",".join(map(str, range(1, 900))),
            "returnCountOnly": "true"}
    async with http.post(portal.layer_url(0) + "/query", data=form) as answer:
        assert orjson.loads(await answer.read()) == {"count": 899}


@pytest.mark.parametrize("where", ["ZONING LIKE 'R%'", "NOPE = 1", "ZONING = 'R-4"])
async def test_an_unsupported_where_gets_arcgis_error_json_with_status_200(
        portal: RunningPortal, http: aiohttp.ClientSession, where: str) -> None:
    assert await query(http, portal, where=where) == WHERE_INVALID


async def test_geojson_is_a_wgs84_feature_collection_keyed_by_object_id(
        http: aiohttp.ClientSession) -> None:
    async with run_portal(County(300, seed=2, crs=2264)) as portal:
        answer = await query(http, portal, f="geojson", where="1=1", resultRecordCount=100)
    assert answer["type"] == "FeatureCollection"
    assert answer["properties"]["exceededTransferLimit"] is True
    feature = answer["features"][0]
    assert feature["id"] == feature["properties"]["OBJECTID"]
    lon, lat = shapely.geometry.shape(feature["geometry"]).centroid.coords[0]
    assert -79.0 < lon < -78.3 and 35.5 < lat < 36.1


# -- data ------------------------------------------------------------------------------


@pytest.mark.parametrize(("crs", "source"), [(2264, "EPSG:2264"), (102100, "EPSG:3857")])
async def test_projected_coordinates_reproject_back_onto_the_same_parcels(
        http: aiohttp.ClientSession, crs: int, source: str) -> None:
    back = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
    async with run_portal(County(400, seed=9, crs=crs)) as projected, \
            run_portal(County(400, seed=9)) as wgs84:
        theirs = await query(http, projected, where="1=1", resultRecordCount=50)
        ours = await query(http, wgs84, where="1=1", resultRecordCount=50)
    for a, b in zip(theirs["features"], ours["features"], strict=True):
        if "geometry" not in b:
            continue
        xy = np.array(a["geometry"]["rings"][0])
        lon, lat = back.transform(xy[:, 0], xy[:, 1])
        assert np.allclose(np.column_stack([lon, lat]), b["geometry"]["rings"][0], atol=1e-6)
        assert lon.min() > -79.0 and lon.max() < -78.3 and 35.5 < lat.min() < 36.1


async def test_rings_are_clockwise_outside_and_counter_clockwise_inside(
        http: aiohttp.ClientSession) -> None:
    async with run_portal(County(2000, seed=4)) as portal:
        features = await all_features(http, portal)
    holes = 0
    for feature in features:
        rings = feature.get("geometry", {}).get("rings", [])
        if rings and not shapely.Polygon(rings[0]).is_valid:
            continue  # a bow-tie has no orientation
        outer = [r for r in rings if not shapely.LinearRing(r).is_ccw]
        inner = [r for r in rings if shapely.LinearRing(r).is_ccw]
        assert outer or not rings
        holes += len(inner)
        for ring in inner:
            assert any(shapely.Polygon(o).contains(shapely.Polygon(ring)) for o in outer)
    assert holes > 20


async def test_values_carry_real_world_quirks(portal: RunningPortal,
                                              http: aiohttp.ClientSession) -> None:
    rows = [f["attributes"] for f in await all_features(http, portal, returnGeometry="false")]
    assert any(r["OWNER"] != r["OWNER"].rstrip() for r in rows)
    assert any(r["SITE_ADDRESS"] != r["SITE_ADDRESS"].rstrip() for r in rows)
    assert all(r["PARCEL_PK"] > 2**31 for r in rows)
    assert all(len(str(r["REVAL_DATE"])) == 13 for r in rows)
    assert all(len(r["PIN"]) == 10 and r["PIN"].isdigit() for r in rows)
    assert any(r["DEED_DATE"] is None for r in rows)
    dated = [r for r in rows if r["DEED_DATE"] is not None]
    assert all(len(r["SALE_DATE"]) == 10 for r in dated)
    assert all(2015 <= int(np.datetime64(r["LAST_EDITED_DATE"], "ms").astype(str)[:4]) <= 2024
               for r in rows)


async def test_the_same_seed_serves_the_same_bytes(http: aiohttp.ClientSession) -> None:
    bodies = []
    for seed in (6, 6, 7):
        async with run_portal(County(500, seed=seed, crs=2264)) as portal, \
                http.get(portal.layer_url(0) + "/query",
                         params={"f": "json", "where": "1=1", "outFields": "*"}) as answer:
            bodies.append(await answer.read())
    assert bodies[0] == bodies[1] != bodies[2]


# -- versions --------------------------------------------------------------------------


async def admin(http: aiohttp.ClientSession, portal: RunningPortal, path: str,
                body: dict[str, Any] | None = None) -> Any:
    async with http.post(portal.base_url + path, json=body or {}) as answer:
        assert answer.status == 200
        return orjson.loads(await answer.read())


async def test_publish_changes_the_asked_fraction_and_stamps_edit_dates(
        http: aiohttp.ClientSession) -> None:
    async with run_portal(County(2000, seed=8)) as portal:
        before = {f["attributes"]["PIN"]: f for f in await all_features(http, portal)}
        summary = await admin(http, portal, "/_portal/publish", {"fraction": 0.05, "seed": 2})
        after = {f["attributes"]["PIN"]: f for f in await all_features(http, portal)}
        edited = await query(http, portal, returnCountOnly="true",
                             where=f"LAST_EDITED_DATE = {summary['edit_date']}")
    assert (summary["changed"], summary["deleted"], summary["added"]) == (100, 10, 10)
    assert summary["rezoned"] + summary["reshaped"] + summary["sold"] == 100
    assert set(before) - set(after) == set(summary["deleted_pins"])
    assert set(after) - set(before) == set(summary["added_pins"])
    differs = {pin for pin in set(before) & set(after) if before[pin] != after[pin]}
    assert differs == set(summary["changed_pins"])
    assert edited["count"] == 110
    assert min(after[p]["attributes"]["OBJECTID"] for p in summary["added_pins"]) > 2000


async def test_republish_renumbers_every_object_id_and_keeps_the_content(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    def by_pin(features: list[dict[str, Any]]) -> dict[str, Any]:
        return {f["attributes"]["PIN"]: ({k: v for k, v in f["attributes"].items()
                                          if k != "OBJECTID"}, f.get("geometry"))
                for f in features}

    before = await all_features(http, portal)
    await admin(http, portal, "/_portal/republish")
    after = await all_features(http, portal)
    old = {f["attributes"]["OBJECTID"] for f in before}
    new = {f["attributes"]["OBJECTID"] for f in after}
    assert len(new) == len(old) == 1000 and not old & new
    assert by_pin(before) == by_pin(after)
