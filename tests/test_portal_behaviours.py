"""Each portal behaviour makes the server misbehave exactly the way it says."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from zoningsync.portal.behaviours import BehaviourError, Behaviours
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(600, seed=3)) as running:
        yield running


async def fetch(http: aiohttp.ClientSession, url: str, **params: Any
                ) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as answer:
        return answer.status, dict(answer.headers), await answer.read()


async def query(http: aiohttp.ClientSession, portal: RunningPortal, **params: Any) -> Any:
    status, _, body = await fetch(http, portal.layer_url(0) + "/query",
                                  **{"f": "json", "where": "1=1", **params})
    assert status == 200
    return orjson.loads(body)


async def metadata(http: aiohttp.ClientSession, portal: RunningPortal) -> Any:
    return orjson.loads((await fetch(http, portal.layer_url(0), f="json"))[2])


def oids(answer: Any) -> list[int]:
    return [f["attributes"]["OBJECTID"] for f in answer["features"]]


async def test_without_pagination_result_offset_is_ignored(portal: RunningPortal,
                                                           http: aiohttp.ClientSession) -> None:
    portal.behaviours.update({"pagination": "false", "max_record_count": "100"})
    meta = await metadata(http, portal)
    assert meta["supportsPagination"] is False
    assert meta["advancedQueryCapabilities"]["supportsPagination"] is False
    answer = await query(http, portal, resultOffset=200, resultRecordCount=10,
                         orderByFields="OBJECTID ASC")
    assert oids(answer) == list(range(1, 101))


async def test_max_record_count_is_advertised_and_enforced(portal: RunningPortal,
                                                           http: aiohttp.ClientSession) -> None:
    portal.behaviours.max_record_count = 250
    assert (await metadata(http, portal))["maxRecordCount"] == 250
    answer = await query(http, portal)
    assert len(answer["features"]) == 250 and answer["exceededTransferLimit"] is True


async def test_a_silent_cap_returns_fewer_rows_and_says_nothing(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    portal.behaviours.silent_cap = 70
    assert (await metadata(http, portal))["maxRecordCount"] > 70
    answer = await query(http, portal, resultRecordCount=500)
    assert len(answer["features"]) == 70
    assert answer["exceededTransferLimit"] is False


async def test_error_json_comes_with_status_200(portal: RunningPortal,
                                                http: aiohttp.ClientSession) -> None:
    portal.behaviours.error_json_rate = 1.0
    status, _, body = await fetch(http, portal.layer_url(0) + "/query", f="json", where="1=1")
    assert status == 200
    assert orjson.loads(body)["error"]["code"] == 500
    assert orjson.loads(body)["error"]["message"] == "Error performing query operation"


@pytest.mark.parametrize(("behaviour", "status"), [("http_429_rate", 429),
                                                   ("http_503_rate", 503)])
async def test_throttling_answers_carry_retry_after(portal: RunningPortal,
                                                    http: aiohttp.ClientSession,
                                                    behaviour: str, status: int) -> None:
    portal.behaviours.update({behaviour: 1, "retry_after_s": 7})
    got, headers, _ = await fetch(http, portal.layer_url(0) + "/query", f="json")
    assert got == status
    assert headers["Retry-After"] == "7"


async def test_a_truncated_body_breaks_off_halfway(portal: RunningPortal,
                                                   http: aiohttp.ClientSession) -> None:
    portal.behaviours.truncate_rate = 1.0
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(http, portal.layer_url(0) + "/query", f="json", where="1=1")


async def test_a_firewall_answers_html_with_status_200(portal: RunningPortal,
                                                       http: aiohttp.ClientSession) -> None:
    portal.behaviours.html_rate = 1.0
    status, headers, body = await fetch(http, portal.layer_url(0), f="json")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")


async def test_latency_delays_every_answer(portal: RunningPortal,
                                           http: aiohttp.ClientSession) -> None:
    portal.behaviours.latency_ms = 200
    started = time.monotonic()
    await metadata(http, portal)
    assert time.monotonic() - started >= 0.19


async def test_a_required_token_must_be_sent(portal: RunningPortal,
                                             http: aiohttp.ClientSession) -> None:
    portal.behaviours.require_token = "s3cret"
    refused = {"error": {"code": 498, "message": "Invalid token.", "details": []}}
    assert await query(http, portal) == refused
    assert await query(http, portal, token="wrong") == refused
    assert len((await query(http, portal, token="s3cret"))["features"]) == 600


async def test_without_timestamp_literals_only_epoch_milliseconds_work(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    portal.behaviours.timestamp_literals = False
    refused = await query(http, portal, returnCountOnly="true",
                          where="LAST_EDITED_DATE > TIMESTAMP '2020-01-01 00:00:00'")
    assert refused["error"]["details"] == ["'where' parameter is invalid"]
    counted = await query(http, portal, returnCountOnly="true",
                          where="LAST_EDITED_DATE > 1577836800000")
    assert 0 < counted["count"] < 600


async def test_without_edit_tracking_there_is_no_edit_fields_info(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    portal.behaviours.edit_tracking = False
    assert "editFieldsInfo" not in await metadata(http, portal)


async def test_without_oid_field_name_the_oid_is_known_by_its_type(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    portal.behaviours.no_oid_field_name = True
    meta = await metadata(http, portal)
    assert "objectIdField" not in meta
    assert [f["name"] for f in meta["fields"] if f["type"] == "esriFieldTypeOID"] == [
        "OBJECTID"]


async def test_without_geojson_only_json_is_offered_and_served(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    portal.behaviours.geojson = False
    assert (await metadata(http, portal))["supportedQueryFormats"] == "JSON"
    refused = await query(http, portal, f="geojson")
    assert refused["error"]["code"] == 400


async def test_faults_are_reproducible_for_a_seed(portal: RunningPortal,
                                                  http: aiohttp.ClientSession) -> None:
    async def statuses() -> list[int]:
        return [(await fetch(http, portal.layer_url(0), f="json"))[0] for _ in range(30)]

    portal.behaviours.update({"http_503_rate": 0.5, "retry_after_s": 0, "seed": 4})
    first = await statuses()
    portal.behaviours.update({"seed": 4})
    assert await statuses() == first
    assert {200, 503} == set(first)


async def test_behaviours_are_set_over_http(portal: RunningPortal,
                                            http: aiohttp.ClientSession) -> None:
    url = portal.base_url + "/_portal/behaviour"
    async with http.post(url, json={"silent_cap": 40, "pagination": False}) as answer:
        assert (await answer.json())["silent_cap"] == 40
    assert portal.behaviours.silent_cap == 40 and portal.behaviours.pagination is False
    async with http.post(url, json={"no_such_knob": 1}) as answer:
        assert answer.status == 400
        assert "no_such_knob" in (await answer.json())["error"]


def test_unknown_or_malformed_behaviours_are_refused() -> None:
    with pytest.raises(BehaviourError):
        Behaviours().update({"pagination": "maybe"})
    with pytest.raises(BehaviourError):
        Behaviours().update({"latency_ms": "-5"})


async def test_stats_count_requests_per_kind_and_keep_arrival_times(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    await metadata(http, portal)
    await query(http, portal, returnCountOnly="true")
    await query(http, portal, returnCountOnly="true")
    async with http.get(portal.base_url + "/_portal/stats") as answer:
        stats = await answer.json()
    assert stats["requests"] == {"metadata": 1, "query": 2}
    assert len(stats["arrivals"]) == 3 and stats["arrivals"] == sorted(stats["arrivals"])
    async with http.post(portal.base_url + "/_portal/stats/reset"):
        pass
    assert portal.app.stats.requests == {} and portal.app.stats.arrivals == []


async def test_the_command_line_prints_its_url_and_stops_on_sigterm(
        http: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zoningsync.portal", "--host", "127.0.0.1", "--port", "0",
        "--parcels", "200", "--seed", "2", "--crs", "2264",
        "--behaviour", "max_record_count=50", "--behaviour", "geojson=false",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        base_url = line.decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        url = base_url + "/arcgis/rest/services/Wake/FeatureServer/0"
        meta = orjson.loads((await fetch(http, url, f="json"))[2])
        assert meta["maxRecordCount"] == 50
        assert meta["sourceSpatialReference"]["wkid"] == 2264
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        assert await process.stdout.read() == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
