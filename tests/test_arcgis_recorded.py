"""The ArcGIS producer against answers recorded from real county servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.portal_helpers import FIXTURES, feed_config, read_all
from zoningsync.errors import SourceConfigError
from zoningsync.http import Fetcher, FetchStats
from zoningsync.producers.arcgis.producer import ArcgisProducer


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


async def recorded_server(metadata: str, query: dict[str, Any]) -> TestServer:
    """Serve one recorded layer: metadata, and query answers chosen by parameters.

    `query` maps a flag (returnCountOnly, returnIdsOnly, or "features" for any other
    query) to a fixture file name or to an answer given inline.
    """

    async def layer(request: web.Request) -> web.Response:
        return web.json_response(load(metadata))

    async def answer(request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        for flag, name in query.items():
            if params.get(flag) == "true" or flag == "features":
                return web.json_response(load(name) if isinstance(name, str) else name)
        raise web.HTTPBadRequest()

    app = web.Application()
    app.router.add_get("/layer/0", layer)
    app.router.add_route("*", "/layer/0/query", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_kent_layer_without_object_id_field_is_read_by_field_type(
        tmp_path: Path, fetcher: Fetcher) -> None:
    server = await recorded_server("us-mi-kent/us-mi-kent-metadata.json", {
        "returnCountOnly": "us-mi-kent/us-mi-kent-count-only.json",
        "returnIdsOnly": "us-mi-kent/us-mi-kent-ids-only.json",
        "features": "us-mi-kent/us-mi-kent-0.json"})
    try:
        feed = feed_config(tmp_path, str(server.make_url("/layer/0")), key='"PNUM"',
                           fields='parcel_id = "PNUM"')
        producer = ArcgisProducer(feed, fetcher, FetchStats())
        layer = await producer.layer()
        assert layer.oid_field == "OBJECTID"
        assert layer.max_record_count == 1000
        assert await producer.count("1=1") == 222460
        assert await producer.object_ids("1=1") == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13,
                                                    14, 15, 17]
        plan = await producer.plan("1=1", "oids")
        pages = await read_all(producer, plan)
        records = [r for page in pages for r in page.records]
        assert len(records) == 15
        assert pages[0].crs is not None and pages[0].crs.wkid is None
        assert pages[0].crs.wkt is not None
        assert "StatePlane_Michigan_South" in pages[0].crs.wkt
        first = records[0]
        assert first.source_key == "41-01-06-100-009"
        assert first.attrs["OWNERNAME1"] == "NIECE JERMEY J & SARAH R"
        assert first.attrs["PPN"] == 410106100009
        assert "OBJECTID" not in first.attrs
    finally:
        await server.close()


async def test_tuolumne_oid_field_named_shape_fid_is_found(tmp_path: Path,
                                                          fetcher: Fetcher) -> None:
    server = await recorded_server("us-ca-tuolumne/us-ca-tuolumne-metadata.json", {
        "returnCountOnly": "us-ca-tuolumne/us-ca-tuolumne-count-only.json"})
    try:
        feed = feed_config(tmp_path, str(server.make_url("/layer/0")), key='"O_ID"',
                           fields='zoning_code = "ZONING"')
        producer = ArcgisProducer(feed, fetcher, FetchStats())
        layer = await producer.layer()
        assert layer.oid_field == "SHAPE.fid"
        assert layer.crs is not None and (layer.crs.wkid, layer.crs.latest_wkid) == (102643,
                                                                                      2227)
        assert await producer.count("1=1") == 469
        assert producer.source_key({"O_ID": 4660, "ZONING": "RE-2 "}) == "4660"
    finally:
        await server.close()


async def test_chicago_pagination_is_read_from_advanced_capabilities(
        tmp_path: Path, fetcher: Fetcher) -> None:
    server = await recorded_server("us-il-chicago/metadata.json", {})
    try:
        feed = feed_config(tmp_path, str(server.make_url("/layer/0")), key='"GEOID"',
                           fields='zoning_desc = "NAME"')
        layer = await ArcgisProducer(feed, fetcher, FetchStats()).layer()
        assert layer.supports_pagination
        assert layer.max_record_count == 100000
        assert layer.supports_geojson
        assert layer.crs is not None and (layer.crs.wkid, layer.crs.latest_wkid) == (102100,
                                                                                      3857)
    finally:
        await server.close()


async def test_madison_nulls_are_kept_and_the_record_still_produced(tmp_path: Path,
                                                         fetcher: Fetcher) -> None:
    server = await recorded_server("us-ms-madison/us-ms-madison-metadata.json", {
        "returnIdsOnly": {"objectIdFieldName": "OBJECTID", "objectIds": [26353]},
        "features": "us-ms-madison/us-ms-madison-0.json"})
    try:
        feed = feed_config(tmp_path, str(server.make_url("/layer/0")), key='"REGION"',
                           fields='parcel_id = "PARCEL_ID_EED"')
        producer = ArcgisProducer(feed, fetcher, FetchStats())
        layer = await producer.layer()
        assert layer.fields["EDITDATE"] == "esriFieldTypeDate"
        assert layer.edit_date_field is None  # no editFieldsInfo: not an edit-tracking layer
        plan = await producer.plan("1=1", "oids")
        records = [r for page in await read_all(producer, plan) for r in page.records]
        assert len(records) == 1
        record = records[0]
        assert record.fields == {"parcel_id": None}
        assert record.attrs["EDITDATE"] is None and record.attrs["OWNER"] is None
        assert record.geometry is not None
        geometry_text = record.raw["geometry"]  # kept as its JSON text until read
        assert {**record.raw, "geometry": json.loads(geometry_text)} == load(
            "us-ms-madison/us-ms-madison-0.json")["features"][0]
    finally:
        await server.close()


async def test_a_key_field_the_layer_lacks_names_the_real_fields(tmp_path: Path,
                                                                 fetcher: Fetcher) -> None:
    server = await recorded_server("us-mi-kent/us-mi-kent-metadata.json", {})
    try:
        feed = feed_config(tmp_path, str(server.make_url("/layer/0")), key='"PARCELNO"',
                           fields='parcel_id = "PNUM"')
        with pytest.raises(SourceConfigError, match=r"feeds\.parcels\.key.*PNUM"):
            await ArcgisProducer(feed, fetcher, FetchStats()).layer()
    finally:
        await server.close()
