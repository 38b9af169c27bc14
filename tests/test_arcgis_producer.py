"""The ArcGIS producer against recorded answers of real servers and the simulated portal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.portal_helpers import FIXTURES, feed_config
from zoningsync.errors import SourceConfigError, TokenRejected
from zoningsync.http import Fetcher, FetchStats
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.producers.arcgis.plan import FetchPlan
from zoningsync.producers.arcgis.producer import ArcgisProducer
from zoningsync.records import Page


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


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher() as f:
        yield f


async def collect(producer: ArcgisProducer, plan: FetchPlan) -> list[Page]:
    return [page async for page in producer.pages(plan)]


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
        pages = await collect(producer, plan)
        records = [r for page in pages for r in page.records]
        assert len(records) == 15
        assert pages[0].crs is not None and pages[0].crs.wkt is not None
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


async def test_madison_nulls_and_edit_date_field_are_kept(tmp_path: Path,
                                                         fetcher: Fetcher) -> None:
    server = await recorded_server("us-ms-madison/us-ms-madison-metadata.json", {
        "returnIdsOnly": {"objectIdFieldName": "OBJECTID", "objectIds": [26353]},
        "features": "us-ms-madison/us-ms-madison-0.json"})
    try:
        feed = feed_config(tmp_path, str(server.make_url("/layer/0")), key='"REGION"',
                           fields='parcel_id = "PARCEL_ID_EED"')
        producer = ArcgisProducer(feed, fetcher, FetchStats())
        plan = await producer.plan("1=1", "oids")
        records = [r for page in await collect(producer, plan) for r in page.records]
        assert len(records) == 1
        record = records[0]
        assert record.fields == {"parcel_id": None}
        assert record.attrs["EDITDATE"] is None and record.attrs["OWNER"] is None
        assert record.geometry is not None
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


# -- against the simulated portal ---------------------------------------------------------


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(1200, seed=3)) as running:
        yield running


def all_keys(pages: list[Page]) -> list[str | None]:
    return [r.source_key for page in pages for r in page.records]


async def test_offset_paging_reads_every_row_exactly_once(tmp_path: Path, fetcher: Fetcher,
                                                          portal: RunningPortal) -> None:
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=100),
                              fetcher, FetchStats())
    plan = await producer.plan("1=1")
    assert plan.strategy == "offset" and len(plan.pages) == 12
    keys = all_keys(await collect(producer, plan))
    assert len(keys) == 1200 == len(set(keys))


async def test_without_pagination_object_id_batches_are_used(tmp_path: Path, fetcher: Fetcher,
                                                             portal: RunningPortal) -> None:
    portal.behaviours.pagination = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=500),
                              fetcher, FetchStats())
    plan = await producer.plan("1=1")
    assert plan.strategy == "oids"
    keys = all_keys(await collect(producer, plan))
    assert len(keys) == 1200 == len(set(keys))
    assert portal.app.stats.requests["query"] >= 3


async def test_a_server_ignoring_result_offset_is_detected(tmp_path: Path, fetcher: Fetcher,
                                                          portal: RunningPortal) -> None:
    portal.behaviours.update({"pagination": False})
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=100),
                              fetcher, FetchStats())
    plan = await producer.plan("1=1", "offset")  # the caller insists; the probe says no
    assert plan.strategy == "oids"


async def test_a_silent_cap_shrinks_pages_and_skips_no_row(tmp_path: Path, fetcher: Fetcher,
                                                           portal: RunningPortal) -> None:
    portal.behaviours.update({"silent_cap": 70})
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=250),
                              fetcher, FetchStats())
    plan = await producer.plan("1=1")
    keys = all_keys(await collect(producer, plan))
    assert len(keys) == 1200 == len(set(keys))


async def test_a_silent_cap_on_object_id_batches_asks_for_the_rest(
        tmp_path: Path, fetcher: Fetcher, portal: RunningPortal) -> None:
    portal.behaviours.update({"silent_cap": 90, "pagination": False})
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=400),
                              fetcher, FetchStats())
    keys = all_keys(await collect(producer, await producer.plan("1=1")))
    assert len(keys) == 1200 == len(set(keys))
    assert producer.missing_oids == 0


async def test_long_object_id_lists_are_sent_by_post(tmp_path: Path, fetcher: Fetcher,
                                                     portal: RunningPortal) -> None:
    portal.behaviours.pagination = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=1000),
                              fetcher, FetchStats())
    keys = all_keys(await collect(producer, await producer.plan("1=1")))
    assert len(set(keys)) == 1200  # 1000 ids do not fit a GET URL


async def test_faults_are_ridden_through_to_the_exact_result(tmp_path: Path, fetcher: Fetcher,
                                                             portal: RunningPortal) -> None:
    portal.behaviours.update({"error_json_rate": 0.04, "http_503_rate": 0.03,
                              "http_429_rate": 0.02, "truncate_rate": 0.02,
                              "html_rate": 0.01, "retry_after_s": 0, "seed": 5})
    feed = feed_config(tmp_path, portal.layer_url(0), page_size=100)
    stats = FetchStats()
    producer = ArcgisProducer(feed, fetcher, stats)
    keys = all_keys(await collect(producer, await producer.plan("1=1")))
    assert len(keys) == 1200 == len(set(keys))
    assert stats.retries > 0


async def test_a_rejected_token_names_token_env(tmp_path: Path, fetcher: Fetcher,
                                                portal: RunningPortal,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    portal.behaviours.require_token = "s3cret"
    monkeypatch.setenv("WAKE_TOKEN", "wrong")
    feed = feed_config(tmp_path, portal.layer_url(0), extra='token_env = "WAKE_TOKEN"')
    with pytest.raises(TokenRejected, match="WAKE_TOKEN"):
        await ArcgisProducer(feed, fetcher, FetchStats()).layer()
    monkeypatch.setenv("WAKE_TOKEN", "s3cret")
    assert (await ArcgisProducer(feed, fetcher, FetchStats()).layer()).oid_field == "OBJECTID"


async def test_a_missing_token_variable_is_a_config_error(tmp_path: Path, fetcher: Fetcher,
                                                         portal: RunningPortal,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    feed = feed_config(tmp_path, portal.layer_url(0), extra='token_env = "NO_SUCH_TOKEN"')
    with pytest.raises(SourceConfigError, match="NO_SUCH_TOKEN is not set"):
        await ArcgisProducer(feed, fetcher, FetchStats()).layer()


async def test_edited_since_uses_timestamp_literals(tmp_path: Path, fetcher: Fetcher,
                                                    portal: RunningPortal) -> None:
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    found = await producer.edited_since(datetime(2024, 1, 1, tzinfo=UTC))
    assert found is not None
    where, count = found
    assert "TIMESTAMP '2024-01-01 00:00:00'" in where
    assert 0 < count < 1200


async def test_edited_since_falls_back_to_epoch_milliseconds(tmp_path: Path, fetcher: Fetcher,
                                                            portal: RunningPortal) -> None:
    portal.behaviours.timestamp_literals = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    found = await producer.edited_since(datetime(2024, 1, 1, tzinfo=UTC))
    assert found is not None
    assert found[0] == "LAST_EDITED_DATE > 1704067200000"


async def test_edited_since_is_none_without_edit_tracking(tmp_path: Path, fetcher: Fetcher,
                                                          portal: RunningPortal) -> None:
    portal.behaviours.edit_tracking = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    assert await producer.edited_since(datetime(2024, 1, 1, tzinfo=UTC)) is None


async def test_keys_reads_every_key_without_geometry(tmp_path: Path, fetcher: Fetcher,
                                                     portal: RunningPortal) -> None:
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=300),
                              fetcher, FetchStats())
    keys = [k async for page in producer.keys("1=1") for k in page]
    assert len(set(keys)) == 1200


async def test_plans_round_trip_and_fingerprint_the_object_ids(tmp_path: Path,
                                                              fetcher: Fetcher,
                                                              portal: RunningPortal) -> None:
    portal.behaviours.pagination = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    plan = await producer.plan("1=1")
    assert FetchPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    portal.county.republish()
    assert (await producer.plan("1=1")).fingerprint != plan.fingerprint
