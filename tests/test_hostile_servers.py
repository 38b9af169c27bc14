"""zoningsync against county servers that misbehave on purpose, all on 127.0.0.1.

`Front` is a county server in front of the simulated portal: it passes every
request through, except the kind of request (metadata, count, ids, page) a test
turns hostile. Each test is one hostile behaviour and what zoningsync must do
about it: keep secrets out of every output, fail a bad answer cleanly after its
retries, quarantine the one record it cannot read, stop reading at the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.portal_helpers import feed_config
from zoningsync.config import FeedConfig
from zoningsync.errors import FetchError, TokenRejected, UpstreamRefused
from zoningsync.geometry import read_shapes
from zoningsync.http import AnswerTooBig, Fetcher, FetchStats, RetryPolicy
from zoningsync.portal.arcgis import SERVICE_PATH
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.prepare import prepare_fetched
from zoningsync.producers.arcgis.producer import (
    IDS_MAX_BYTES,
    METADATA_MAX_BYTES,
    PAGE_MIN_BYTES,
    ArcgisProducer,
)
from zoningsync.records import FetchedPage, QuarantineReason, RawJson
from zoningsync.services.sync import sync_feeds
from zoningsync.settings import Settings
from zoningsync.store.staging import quarantine_records

PARCELS = 120
PAGE_SIZE = 40
FAST = RetryPolicy(max_retries=2, timeout_s=20.0, backoff_initial_s=0.01, backoff_max_s=0.02)
TOKEN = "Hx7-echoed-token-0042"
DEEP = b"[" * 5000 + b"]" * 5000  # one array nested 5,000 deep
ENDLESS_LIMIT = 2 * 2**30  # a hostile body still ends somewhere, should the client not stop
READ_CHUNK = 64 * 1024
ZONINGSYNC = [sys.executable, "-m", "zoningsync"]

Params = dict[str, str]
Reply = Callable[["Front", web.Request, Params], Awaitable[web.StreamResponse]]


def request_kind(path: str, params: Mapping[str, str]) -> str:
    if not path.endswith("/query"):
        return "metadata"
    if params.get("returnCountOnly") == "true":
        return "count"
    if params.get("returnIdsOnly") == "true":
        return "ids"
    return "page"


@dataclass
class Front:
    """The portal behind a server that answers `replies[kind]` for that kind of request."""

    portal: str
    session: aiohttp.ClientSession
    base: str = ""
    replies: dict[str, Reply] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    seen_params: list[Params] = field(default_factory=list)

    @property
    def layer_url(self) -> str:
        return f"{self.base}{SERVICE_PATH}/0"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.seen_params.append(params)
        kind = request_kind(request.path, params)
        self.hits[kind] += 1
        reply = self.replies.get(kind)
        if reply is not None:
            return await reply(self, request, params)
        return json_reply(await self.from_portal(request, params))

    async def from_portal(self, request: web.Request, params: Params) -> bytes:
        async with self.session.post(self.portal + request.path, data=params) as answer:
            return await answer.read()


def json_reply(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=14)) as running:
        yield running


@pytest.fixture
async def front(portal: RunningPortal) -> AsyncIterator[Front]:
    async with aiohttp.ClientSession() as session:
        hostile = Front(portal.base_url, session)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hostile.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        hostile.base = str(server.make_url("")).rstrip("/")
        try:
            yield hostile
        finally:
            await server.close()


def settings_for(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, state_dir=tmp_path, sources=tmp_path,
                    cluster_user="zoningsync", log_level="warning", config_file=None)


def hostile_feed(tmp_path: Path, url: str, **options: Any) -> FeedConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return feed_config(tmp_path, url, page_size=PAGE_SIZE, max_retries=FAST.max_retries,
                       **options)


def producer(tmp_path: Path, front: Front, fetcher: Fetcher, **options: Any) -> ArcgisProducer:
    return ArcgisProducer(hostile_feed(tmp_path, front.layer_url, **options), fetcher,
                          FetchStats(), retry=FAST)


async def first_page(p: ArcgisProducer) -> FetchedPage:
    async for page in p.pages(await p.plan("1=1")):
        return page
    raise AssertionError("the plan has no page")


def with_first_geometry(answer: bytes, geometry: bytes) -> bytes:
    """The portal's page with its first feature's geometry replaced by raw JSON text."""
    page = orjson.loads(answer)
    page["features"][0]["geometry"] = "GEOMETRY"
    return orjson.dumps(page).replace(b'"GEOMETRY"', geometry, 1)


def first_geometry(geometry: bytes) -> Reply:
    async def reply(front: Front, request: web.Request, params: Params) -> web.StreamResponse:
        return json_reply(with_first_geometry(await front.from_portal(request, params), geometry))

    return reply


def answer(body: bytes, status: int = 200) -> Reply:
    async def reply(front: Front, request: web.Request, params: Params) -> web.StreamResponse:
        return json_reply(body, status)

    return reply


def rewritten(change: Callable[[dict[str, Any]], None]) -> Reply:
    """The portal's answer, decoded, changed by `change` and encoded again."""
    async def reply(front: Front, request: web.Request, params: Params) -> web.StreamResponse:
        value = orjson.loads(await front.from_portal(request, params))
        change(value)
        return json_reply(orjson.dumps(value))

    return reply


async def endless(front: Front, request: web.Request, params: Params) -> web.StreamResponse:
    """A JSON body that never ends (until the client hangs up, or 2 GiB)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b'{"attributes": {"OBJECTID": 1, "PIN": "0000000001"}, "geometry": null},' * 1000
    sent = 0
    with contextlib.suppress(ConnectionError):
        await response.write(b'{"features": [')
        while sent < ENDLESS_LIMIT:
            await response.write(chunk)
            sent += len(chunk)
    return response


def echo_token(status: int) -> Reply:
    """An error that repeats the token it was sent, the way some front ends do."""
    async def reply(front: Front, request: web.Request, params: Params) -> web.StreamResponse:
        said = f"Invalid token: {params.get('token')}"
        return json_reply(orjson.dumps({"error": {"code": 498, "message": said,
                                                  "details": [f"token={params.get('token')}"]}}),
                          status)

    return reply


async def zoningsync(db_url: str, *args: str, env: Mapping[str, str] | None = None
                     ) -> tuple[int, str, str, int]:
    """Run the CLI as the only child of a fresh Python; also its peak RSS in KiB."""
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "sys.stderr.write(f'\\nPEAK_RSS_KIB {peak}\\n')\n"
        "sys.exit(done.returncode)\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", measure, *ZONINGSYNC, "--database-url", db_url, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = await proc.communicate()
    assert proc.returncode is not None
    text, _, peak = err.decode().rpartition("\nPEAK_RSS_KIB ")
    return proc.returncode, out.decode(), text, int(peak)


async def runs_of(db: asyncpg.Connection[Any]) -> list[tuple[str, str, str | None]]:
    rows = await db.fetch("SELECT feed, status, error FROM zoningsync.runs ORDER BY id")
    return [(r["feed"], r["status"], r["error"]) for r in rows]


# -- secrets ---------------------------------------------------------------------------


async def test_a_token_echoed_in_a_498_body_appears_in_no_message_or_log(
        front: Front, fetcher: Fetcher) -> None:
    front.replies["metadata"] = echo_token(498)
    with capture_logs() as logs, pytest.raises(TokenRejected) as rejected:
        await fetcher.get_json(front.layer_url, {"f": "json", "token": TOKEN}, retry=FAST,
                               stats=FetchStats())
    assert TOKEN not in rejected.value.message
    assert "Invalid token: ***" in rejected.value.message  # the server's reason, masked
    assert TOKEN not in repr(logs)


async def test_a_token_echoed_in_an_arcgis_error_answer_appears_in_no_message_or_log(
        tmp_path: Path, front: Front, fetcher: Fetcher,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_TOKEN", TOKEN)
    front.replies["metadata"] = echo_token(200)
    p = producer(tmp_path, front, fetcher, extra='token_env = "HOSTILE_TOKEN"')
    with capture_logs() as logs, pytest.raises(TokenRejected, match="HOSTILE_TOKEN") as rejected:
        await p.layer()
    assert TOKEN not in rejected.value.message
    assert front.layer_url in rejected.value.message
    assert TOKEN not in repr(logs)


async def test_a_sync_against_a_server_echoing_the_token_keeps_it_out_of_every_output(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, front: Front) -> None:
    front.replies["page"] = echo_token(200)
    hostile_feed(tmp_path, front.layer_url, extra='token_env = "HOSTILE_TOKEN"')
    code, out, err, _ = await zoningsync(db_url, "sync", "test-county", "--sources",
                                         str(tmp_path / "sources"), "--json",
                                         env={"HOSTILE_TOKEN": TOKEN})
    assert code == 1
    assert front.hits["page"] >= 1
    [summary] = json.loads(out)
    assert summary["status"] == "failed"
    [(_, status, error)] = await runs_of(db)
    assert status == "failed"
    assert error is not None and "HOSTILE_TOKEN" in error
    for output in (out, err, error or ""):
        assert TOKEN not in output


# -- decoding --------------------------------------------------------------------------


async def test_a_page_nested_too_deep_fails_after_its_retries_with_the_reason(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["page"] = answer(b'{"features": ' + DEEP + b"}")
    p = producer(tmp_path, front, fetcher)
    with pytest.raises(FetchError, match=r"after 3 attempts; last: invalid JSON .*depth"):
        await first_page(p)
    assert front.hits["page"] == FAST.max_retries + 1


async def test_a_page_nested_too_deep_fails_its_run_and_the_next_feed_still_syncs(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, front: Front,
        portal: RunningPortal) -> None:
    front.replies["page"] = answer(b'{"features": [{"attributes": ' + DEEP + b"}]}")
    feeds = [hostile_feed(tmp_path / "a", front.layer_url, feed_id="hostile"),
             hostile_feed(tmp_path / "b", portal.layer_url(0), feed_id="honest")]
    hostile, honest = await sync_feeds(settings_for(db_url, tmp_path), feeds, full=False,
                                       interactive=False)
    assert (hostile["status"], hostile["exit_code"]) == ("failed", 1)
    assert "depth limit exceeded" in hostile["error"]
    assert honest["status"] == "succeeded"
    [(_, status, error), (_, honest_status, _)] = await runs_of(db)
    assert (status, honest_status) == ("failed", "succeeded")
    assert error is not None and "invalid JSON" in error


async def test_a_record_whose_geometry_nests_too_deep_is_quarantined_and_its_page_prepared(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["page"] = first_geometry(b'{"rings": ' + DEEP + b"}")
    page = await first_page(producer(tmp_path, front, fetcher))
    prepared = prepare_fetched(page, h3_resolution=7)
    deep = [r for r in prepared.rejected if "depth limit" in r.detail]
    assert [r.reason for r in deep] == [QuarantineReason.PARSE_ERROR]
    assert len(prepared.rows) + len(prepared.rejected) == len(page.features) == PAGE_SIZE
    assert len(prepared.rows) > PAGE_SIZE // 2  # the rest of the page goes on
    [stored] = quarantine_records("test-county/parcels", 1, deep)  # storable as it is kept
    assert stored[4] == "parse_error"


async def test_a_sync_quarantines_the_record_it_cannot_decode_and_stores_the_rest(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, front: Front) -> None:
    front.replies["page"] = first_geometry(b'{"rings": ' + DEEP + b"}")
    [summary] = await sync_feeds(settings_for(db_url, tmp_path),
                                 [hostile_feed(tmp_path, front.layer_url)], full=False,
                                 interactive=False)
    assert summary["status"] == "succeeded", summary
    deep = await db.fetch("SELECT reason, detail FROM zoningsync.quarantine "
                          "WHERE detail LIKE '%depth limit%'")
    pages = PARCELS // PAGE_SIZE  # the first record of every page nests too deep
    assert [row["reason"] for row in deep] == ["parse_error"] * pages
    stored = await db.fetchval("SELECT count(*) FROM zoningsync.features")
    quarantined = await db.fetchval("SELECT count(*) FROM zoningsync.quarantine")
    assert summary["fetched"] == stored + quarantined == PARCELS


def test_a_malformed_curve_is_a_parse_error_not_an_exception() -> None:
    curves = [RawJson(b'{"curveRings": [[[0, 0], {"c": 5}]]}'), RawJson(b"[1, 2]"),
              RawJson(b'"rings"')]
    assert [shape[0] for shape in read_shapes(curves, "esrijson")] == [
        QuarantineReason.PARSE_ERROR] * 3


async def test_a_feature_that_is_not_an_object_is_quarantined_and_the_rest_prepared(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["page"] = rewritten(lambda page: page["features"].__setitem__(0, None))
    page = await first_page(producer(tmp_path, front, fetcher))
    prepared = prepare_fetched(page, h3_resolution=7)
    unreadable = [r for r in prepared.rejected if r.source_key is None]
    assert [r.reason for r in unreadable] == [QuarantineReason.PARSE_ERROR]
    assert len(prepared.rows) + len(prepared.rejected) == PAGE_SIZE


# -- numbers and members the server gets wrong -----------------------------------------


@pytest.mark.parametrize("count", [-5, 10**12])
async def test_a_count_no_layer_can_hold_is_refused(
        tmp_path: Path, front: Front, fetcher: Fetcher, count: int) -> None:
    front.replies["count"] = answer(orjson.dumps({"count": count}))
    p = producer(tmp_path, front, fetcher)
    with pytest.raises(UpstreamRefused, match=rf"counts {count} features"):
        await p.plan("1=1", "offset")


async def test_a_count_that_is_not_an_integer_is_a_bad_answer(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["count"] = answer(b'{"count": true}')
    p = producer(tmp_path, front, fetcher)
    with pytest.raises(FetchError, match="'count' is bool"):
        await p.count("1=1")


@pytest.mark.parametrize("oid", ["abc", 1.5, 1e300, [1]])
async def test_an_object_id_that_is_not_an_integer_is_refused(
        tmp_path: Path, front: Front, fetcher: Fetcher, oid: object) -> None:
    front.replies["ids"] = answer(orjson.dumps({"objectIds": [1, oid, 3]}))
    p = producer(tmp_path, front, fetcher)
    with pytest.raises(UpstreamRefused, match="not an integer"):
        await p.object_ids("1=1")


def break_metadata(meta: dict[str, Any]) -> None:
    meta.update(extent=[], advancedQueryCapabilities="yes", editFieldsInfo=5,
                objectIdField=["OBJECTID"], sourceSpatialReference={"wkid": "EPSG:2264"},
                spatialReference={"wkid": 4326})


async def test_metadata_members_of_the_wrong_type_are_read_as_absent(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["metadata"] = rewritten(break_metadata)
    layer = await producer(tmp_path, front, fetcher).layer()
    assert (layer.oid_field, layer.edit_date_field) == ("OBJECTID", None)
    assert layer.crs is not None and layer.crs.wkid == 4326


async def test_a_page_with_an_unreadable_spatial_reference_takes_the_layers(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["page"] = rewritten(
        lambda page: page.update(spatialReference={"wkid": "EPSG:4326", "latestWkid": 1e300}))
    p = producer(tmp_path, front, fetcher)
    page = await first_page(p)
    assert page.crs == (await p.layer()).crs
    assert prepare_fetched(page, h3_resolution=7).rows


async def test_an_error_answer_with_members_of_odd_types_is_retried_then_reported(
        tmp_path: Path, front: Front, fetcher: Fetcher) -> None:
    front.replies["count"] = answer(b'{"error": {"code": [500], "message": {}, "details": 7}}')
    p = producer(tmp_path, front, fetcher)
    with pytest.raises(FetchError, match=r"after 3 attempts; last: .*error list: error \(7\)"):
        await p.count("1=1")


# -- answer caps -----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "cap"), [
    ("metadata", METADATA_MAX_BYTES), ("count", METADATA_MAX_BYTES), ("ids", IDS_MAX_BYTES),
    ("page", PAGE_MIN_BYTES),
])
async def test_an_endless_body_fails_at_once_naming_its_cap_and_is_read_no_further(
        tmp_path: Path, front: Front, kind: str, cap: int) -> None:
    async with Fetcher() as fetcher:
        p = producer(tmp_path, front, fetcher)
        await p.layer()
        front.replies[kind] = endless
        asks: dict[str, Callable[[], Awaitable[object]]] = {
            "metadata": lambda: ArcgisProducer(p.feed, fetcher, p.stats).layer(),
            "count": lambda: p.count("1=1"), "ids": lambda: p.object_ids("1=1"),
            "page": lambda: first_page(p)}
        before = p.stats.bytes
        with pytest.raises(AnswerTooBig, match=rf"over the {cap}-byte limit"):
            await asks[kind]()
    assert front.hits[kind] == (2 if kind == "metadata" else 1)
    assert p.stats.bytes - before <= cap + READ_CHUNK


async def test_an_endless_metadata_body_fails_the_sync_command_in_bounded_memory(
        db_url: str, tmp_path: Path, front: Front) -> None:
    front.replies["metadata"] = endless
    hostile_feed(tmp_path, front.layer_url)
    code, out, err, peak_kib = await zoningsync(db_url, "sync", "test-county", "--sources",
                                                str(tmp_path / "sources"), "--json")
    assert code == 1
    [summary] = json.loads(out)
    assert summary["status"] == "failed"
    assert f"over the {METADATA_MAX_BYTES}-byte limit" in summary["error"]
    assert "Traceback" not in err
    # The layer's metadata and its service root go out together (incremental =
    # "auto"), each asked once: neither is retried, each stopped at its cap.
    assert front.hits["metadata"] == 2
    assert peak_kib < 256 * 1024


async def test_an_endless_page_fails_the_sync_with_a_failed_run_in_bounded_memory(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, front: Front) -> None:
    front.replies["page"] = endless
    feed_config(tmp_path, front.layer_url, page_size=2000, max_retries=FAST.max_retries)
    code, _, err, peak_kib = await zoningsync(db_url, "sync", "test-county", "--sources",
                                              str(tmp_path / "sources"))
    assert code == 1
    assert "Traceback" not in err
    [(_, status, error)] = await runs_of(db)
    assert status == "failed"
    assert error is not None and "-byte limit" in error and "page_size" in error
    assert front.hits["page"] == 1
    assert peak_kib < 256 * 1024
