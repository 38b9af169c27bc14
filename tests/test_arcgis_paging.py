"""The ArcGIS producer against a hand-built layer that misbehaves on request.

`FakeLayer` is a small aiohttp app on 127.0.0.1 speaking just enough of the
ArcGIS REST query API; each test switches on one quirk of real county servers.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.portal_helpers import feed_config, read_all
from zoningsync.errors import SourceConfigError, TokenRejected, UpstreamRefused
from zoningsync.http import Fetcher, FetchStats, RetryPolicy
from zoningsync.producers.arcgis.plan import FetchPlan
from zoningsync.producers.arcgis.producer import ArcgisProducer
from zoningsync.records import CrsSpec, Page, RawJson

FAST_RETRY = RetryPolicy(max_retries=4, timeout_s=10.0, backoff_initial_s=0.01,
                         backoff_max_s=0.05)
EDITED_BASE_MS = 1_700_000_000_000
FIELDS = 'parcel_id = "PIN"'


@dataclass
class FakeLayer:
    """Rows with object ids 1, 4, 7, ... (ids are not positions), and the quirks to show."""

    rows: int = 1000
    pagination: bool = True
    max_record_count: int = 1000
    ignore_offset: bool = False
    cap: int = 0
    never_return: frozenset[int] = frozenset()
    unusable: int = 0  # this many queries first answer error JSON, then an answer without rows
    refuse: tuple[str, ...] = ()  # where fragments answered with a code-400 error
    token: str | None = None
    latency_s: float = 0.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def oids(self) -> list[int]:
        return [3 * i + 1 for i in range(self.rows)]

    def metadata(self) -> dict[str, Any]:
        return {
            "name": "Parcels", "geometryType": "esriGeometryPolygon",
            "objectIdField": "OBJECTID", "maxRecordCount": self.max_record_count,
            "supportsPagination": self.pagination,
            "supportedQueryFormats": "JSON, geoJSON",
            "extent": {"spatialReference": {"wkid": 102100, "latestWkid": 3857}},
            "editFieldsInfo": {"editDateField": "EDITED"},
            "fields": [
                {"name": "OBJECTID", "type": "esriFieldTypeOID"},
                {"name": "PIN", "type": "esriFieldTypeString"},
                {"name": "EDITED", "type": "esriFieldTypeDate"},
                {"name": "BOOK", "type": "esriFieldTypeInteger"},
                {"name": "PAGE", "type": "esriFieldTypeInteger"},
                {"name": "SHAPE", "type": "esriFieldTypeGeometry"},
            ],
        }

    def feature(self, oid: int, out_fields: str) -> dict[str, Any]:
        attributes = {"OBJECTID": oid, "PIN": f"P{oid:05d}  ",
                      "EDITED": EDITED_BASE_MS + oid * 1000, "BOOK": oid % 7, "PAGE": oid}
        if out_fields != "*":
            wanted = out_fields.split(",")
            attributes = {k: v for k, v in attributes.items() if k in wanted}
        x = -85.7 + oid / 1e5
        return {"attributes": attributes,
                "geometry": {"rings": [[[x, 43.2], [x + 1e-5, 43.2], [x, 43.21], [x, 43.2]]]}}

    def selected(self, where: str) -> list[int]:
        if match := re.search(r"EDITED > TIMESTAMP '([^']+)'", where):
            after = datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp() * 1000
        elif match := re.search(r"EDITED > (\d+)", where):
            after = int(match[1])
        else:
            return self.oids()
        return [oid for oid in self.oids() if EDITED_BASE_MS + oid * 1000 > after]

    def answer(self, params: dict[str, str]) -> dict[str, Any]:
        if self.token is not None and params.get("token") != self.token:
            return {"error": {"code": 498, "message": "Invalid token.", "details": []}}
        if self.unusable > 0:
            self.unusable -= 1
            if self.unusable % 2:
                return {"error": {"code": 500, "message": "Unable to complete operation."}}
            return {"objectIdFieldName": "OBJECTID"}
        where = params.get("where", "1=1")
        if any(fragment in where for fragment in self.refuse):
            return {"error": {"code": 400, "message": "Unable to complete operation.",
                              "details": ["'where' parameter is invalid"]}}
        oids = self.selected(where)
        if params.get("returnCountOnly") == "true":
            return {"count": len(oids)}
        if params.get("returnIdsOnly") == "true":
            return {"objectIdFieldName": "OBJECTID", "objectIds": list(reversed(oids))}
        if "objectIds" in params:
            asked = {int(oid) for oid in params["objectIds"].split(",")}
            oids = [oid for oid in oids if oid in asked]
        elif self.pagination and not self.ignore_offset:
            oids = oids[int(params.get("resultOffset", 0)):]
        limit = min(int(params.get("resultRecordCount", self.max_record_count)),
                    self.max_record_count, self.cap or self.max_record_count)
        shown = [oid for oid in oids if oid not in self.never_return][:limit]
        return {"objectIdFieldName": "OBJECTID", "spatialReference": {"wkid": 4326},
                "exceededTransferLimit": len(oids) > limit,
                "features": [self.feature(oid, params.get("outFields", "*")) for oid in shown]}

    async def handle_query(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append((request.method, params))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
            return web.json_response(self.answer(params))
        finally:
            self.in_flight -= 1

    async def handle_layer(self, request: web.Request) -> web.Response:
        if self.token is not None and request.query.get("token") != self.token:
            return web.json_response({"error": {"code": 499, "message": "Token Required"}})
        return web.json_response(self.metadata())

    def queries(self, flag: str) -> list[dict[str, str]]:
        return [params for _, params in self.requests if flag in params]


@pytest.fixture
async def layer() -> AsyncIterator[tuple[FakeLayer, str]]:
    fake = FakeLayer()
    app = web.Application()
    app.router.add_get("/rest/services/Parcels/FeatureServer/0", fake.handle_layer)
    app.router.add_route("*", "/rest/services/Parcels/FeatureServer/0/query", fake.handle_query)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("/rest/services/Parcels/FeatureServer/0"))
    finally:
        await server.close()


def producer_for(tmp_path: Path, url: str, fetcher: Fetcher, *, page_size: int = 100,
                 key: str = '"PIN"', extra: str = "", stats: FetchStats | None = None
                 ) -> ArcgisProducer:
    feed = feed_config(tmp_path, url, page_size=page_size, key=key, fields=FIELDS, extra=extra)
    return ArcgisProducer(feed, fetcher, stats or FetchStats(), retry=FAST_RETRY)


def keys_of(pages: list[Page]) -> list[str | None]:
    return [record.source_key for page in pages for record in page.records]


def sorted_keys(pages: list[Page]) -> list[str]:
    """Every key read, in order; a missing key shows as 'None' and fails the comparison."""
    return sorted(str(key) for key in keys_of(pages))


def every_key(fake: FakeLayer) -> list[str]:
    return [f"P{oid:05d}" for oid in fake.oids()]


# -- paging strategies -------------------------------------------------------------------


async def test_offset_pages_return_every_row_once_while_fetched_concurrently(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.latency_s = 0.02
    producer = producer_for(tmp_path, url, fetcher)
    plan = await producer.plan("1=1")
    assert plan.strategy == "offset"
    assert [p.page_id for p in plan.pages] == [f"o{n * 100}" for n in range(10)]
    pages = await read_all(producer, plan)
    assert sorted_keys(pages) == every_key(fake)
    assert fake.most_in_flight > 1
    offset_queries = fake.queries("resultOffset")
    assert all(q["orderByFields"] == "OBJECTID ASC" and q["outFields"] == "*"
               and q["returnGeometry"] == "true" and q["f"] == "json" for q in offset_queries)


async def test_page_size_is_bounded_by_the_server_max_record_count(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.max_record_count = 300
    plan = await producer_for(tmp_path, url, fetcher, page_size=2000).plan("1=1")
    assert plan.page_size == 300 and len(plan.pages) == 4 and plan.expected == 1000


async def test_without_pagination_object_id_batches_are_read(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.pagination = False
    producer = producer_for(tmp_path, url, fetcher, page_size=100)
    plan = await producer.plan("1=1")
    assert plan.strategy == "oids" and len(plan.pages) == 10
    assert list(plan.pages[0].oids) == fake.oids()[:100]  # sorted, though listed backwards
    assert sorted_keys(await read_all(producer, plan)) == every_key(fake)
    assert not fake.queries("resultOffset")


async def test_long_object_id_lists_are_posted_and_short_ones_are_not(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.pagination = False
    producer = producer_for(tmp_path, url, fetcher, page_size=600)
    assert sorted_keys(await read_all(producer, await producer.plan("1=1"))) == every_key(
        fake)
    methods = {len(params["objectIds"].split(",")): method
               for method, params in fake.requests if "objectIds" in params}
    assert methods == {600: "POST", 400: "POST"}
    assert all(method == "GET" for method, params in fake.requests if "objectIds" not in params)


async def test_pages_already_done_are_skipped_on_resume(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    _, url = layer
    producer = producer_for(tmp_path, url, fetcher)
    plan = await producer.plan("1=1")
    pages = await read_all(producer, plan, done=("o0", "o500"))
    assert sorted(p.page_id for p in pages) == sorted(
        p.page_id for p in plan.pages if p.page_id not in ("o0", "o500"))
    assert len(keys_of(pages)) == 800


# -- silent caps and servers that ignore paging ---------------------------------------------


async def test_a_silent_cap_is_filled_with_smaller_requests_and_skips_no_row(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.cap = 70
    producer = producer_for(tmp_path, url, fetcher, page_size=250)
    plan = await producer.plan("1=1")
    pages = await read_all(producer, plan)
    assert sorted_keys(pages) == every_key(fake)
    assert sorted(p.page_id for p in pages) == sorted(p.page_id for p in plan.pages)
    assert all(len(page.records) == 250 for page in pages)
    asked = [int(q["resultRecordCount"]) for q in fake.queries("resultRecordCount")]
    assert max(asked[-5:]) <= 70  # later requests ask only for what the server answers


async def test_a_silent_cap_on_object_id_batches_asks_for_the_rest(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.pagination, fake.cap = False, 90
    producer = producer_for(tmp_path, url, fetcher, page_size=400)
    pages = await read_all(producer, await producer.plan("1=1"))
    assert sorted_keys(pages) == every_key(fake)
    assert [len(p.records) for p in sorted(pages, key=lambda p: p.page_id)] == [400, 400, 200]
    assert producer.missing_oids == 0


async def test_objects_the_server_never_returns_are_counted_not_invented(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.pagination, fake.never_return = False, frozenset({4, 301, 2998})
    producer = producer_for(tmp_path, url, fetcher, page_size=200)
    keys = keys_of(await read_all(producer, await producer.plan("1=1")))
    assert len(keys) == len(set(keys)) == 997
    assert "P00004" not in keys
    assert producer.missing_oids == 3


async def test_a_server_ignoring_result_offset_is_read_by_object_id_without_duplicates(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.ignore_offset = True
    producer = producer_for(tmp_path, url, fetcher)
    plan = await producer.plan("1=1")
    assert plan.strategy == "offset"  # the metadata claims pagination
    pages = await read_all(producer, plan)
    assert sorted_keys(pages) == every_key(fake)
    assert sorted(p.page_id for p in pages) == sorted(p.page_id for p in plan.pages)
    assert fake.queries("objectIds")


async def test_a_resumed_read_detects_ignored_offsets_from_its_first_page(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.ignore_offset = True
    producer = producer_for(tmp_path, url, fetcher)
    plan = await producer.plan("1=1")
    pages = await read_all(producer, plan, done=("o0", "o100"))
    assert sorted_keys(pages) == every_key(fake)[200:]


# -- unusable answers ------------------------------------------------------------------------


async def test_error_json_and_answers_without_rows_are_retried_until_good(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    stats = FetchStats()
    producer = producer_for(tmp_path, url, fetcher, stats=stats)
    plan = await producer.plan("1=1")
    fake.unusable = 2
    pages = await read_all(producer, plan)
    assert sorted_keys(pages) == every_key(fake)
    assert stats.retries == 2


async def test_a_refused_where_clause_is_not_retried(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.refuse = ("BOGUS",)
    producer = producer_for(tmp_path, url, fetcher)
    with pytest.raises(UpstreamRefused, match="'where' parameter is invalid"):
        await producer.count("BOGUS = 1")
    assert len(fake.queries("returnCountOnly")) == 1


async def test_a_rejected_token_names_token_env(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = layer
    fake.token = "s3cret"
    monkeypatch.setenv("KENT_TOKEN", "stale")
    producer = producer_for(tmp_path, url, fetcher, extra='token_env = "KENT_TOKEN"')
    with pytest.raises(TokenRejected, match="KENT_TOKEN") as raised:
        await producer.layer()
    assert "stale" not in str(raised.value)
    monkeypatch.setenv("KENT_TOKEN", "s3cret")
    assert await producer.count("1=1") == 1000


async def test_a_token_variable_that_is_not_set_is_a_config_error(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = layer
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    producer = producer_for(tmp_path, url, fetcher, extra='token_env = "NO_SUCH_TOKEN"')
    with pytest.raises(SourceConfigError, match=r"token_env.*NO_SUCH_TOKEN is not set"):
        await producer.layer()


async def test_a_configured_field_the_layer_lacks_names_the_real_fields(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    _, url = layer
    producer = producer_for(tmp_path, url, fetcher, key='"PARCELNO"')
    with pytest.raises(SourceConfigError,
                       match=r"test-county\.toml: feeds\.parcels\.key.*PARCELNO.*PIN, EDITED"):
        await producer.layer()


async def test_configured_field_names_match_the_layer_whatever_their_case(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    producer = producer_for(tmp_path, url, fetcher, key='"pin"')
    pages = await read_all(producer, await producer.plan("1=1"))
    assert sorted_keys(pages) == every_key(fake)


# -- incremental reads -------------------------------------------------------------------------

def mark_after(oid: int) -> datetime:
    """The moment object `oid` was edited: later objects were edited after it."""
    return datetime.fromtimestamp((EDITED_BASE_MS + oid * 1000) / 1000, UTC)


async def test_edited_since_asks_with_a_standard_timestamp_first(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    _, url = layer
    producer = producer_for(tmp_path, url, fetcher)
    found = await producer.edited_since(mark_after(2971))
    assert found == ("EDITED > TIMESTAMP '2023-11-14 23:02:51'", 9)


async def test_edited_since_falls_back_to_epoch_milliseconds_and_remembers_it(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.refuse = ("TIMESTAMP",)
    producer = producer_for(tmp_path, url, fetcher)
    assert await producer.edited_since(mark_after(2971)) == ("EDITED > 1700002971000", 9)
    asked = len(fake.requests)
    assert await producer.edited_since(mark_after(2998)) == ("EDITED > 1700002998000", 0)
    assert len(fake.requests) == asked + 1


async def test_edited_since_is_none_when_the_server_refuses_both_dialects(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.refuse = ("TIMESTAMP", "EDITED >")
    producer = producer_for(tmp_path, url, fetcher)
    assert await producer.edited_since(mark_after(2971)) is None


async def test_edited_since_keeps_the_feed_where_clause(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    _, url = layer
    producer = producer_for(tmp_path, url, fetcher, extra='where = "BOOK = 3"')
    found = await producer.edited_since(mark_after(2971))
    assert found is not None
    assert found[0] == "(BOOK = 3) AND EDITED > TIMESTAMP '2023-11-14 23:02:51'"


# -- keys and plans ----------------------------------------------------------------------------


async def test_keys_are_read_without_geometry_or_other_fields(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    producer = producer_for(tmp_path, url, fetcher, page_size=300)
    keys = [key async for batch in producer.keys("1=1") for key in batch]
    assert sorted(k for k in keys if k is not None) == every_key(fake)
    for query in fake.queries("resultOffset"):
        assert query["outFields"] == "PIN,OBJECTID" and query["returnGeometry"] == "false"


async def test_composite_keys_are_json_arrays_in_pages_and_keys_alike(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    _, url = layer
    producer = producer_for(tmp_path, url, fetcher, key='["BOOK", "PAGE"]')
    pages = await read_all(producer, await producer.plan("1=1"))
    keys = [key async for batch in producer.keys("1=1") for key in batch]
    assert sorted(map(str, keys_of(pages))) == sorted(map(str, keys))
    assert '[1,1]' in keys and len(set(keys)) == 1000


async def test_pages_carry_the_answer_crs_and_normalized_records(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    _, url = layer
    producer = producer_for(tmp_path, url, fetcher)
    page = (await read_all(producer, await producer.plan("1=1")))[0]
    assert page.crs == CrsSpec(wkid=4326) and page.geometry_format == "esrijson"
    record = next(r for r in page.records if r.oid == 1)
    assert record.fields == {"parcel_id": "P00001"}
    assert record.attrs == {"EDITED": "2023-11-14T22:13:21Z", "BOOK": 1, "PAGE": 1}
    assert record.edited_at == datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)
    assert isinstance(record.geometry, RawJson) and "rings" in orjson.loads(bytes(record.geometry))


async def test_a_plan_round_trips_and_its_fingerprint_follows_the_object_ids(
        tmp_path: Path, fetcher: Fetcher, layer: tuple[FakeLayer, str]) -> None:
    fake, url = layer
    fake.pagination = False
    producer = producer_for(tmp_path, url, fetcher)
    plan = await producer.plan("1=1")
    assert FetchPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert (await producer.plan("1=1")).fingerprint == plan.fingerprint
    fake.rows = 999
    next_run = producer_for(tmp_path, url, fetcher)  # one producer lives for one run
    assert (await next_run.plan("1=1")).fingerprint != plan.fingerprint
