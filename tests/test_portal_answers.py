"""The portal's answer cache serves the very bytes the portal would build, and never
an answer of an older publish or of other behaviours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from zoningsync.portal.answers import AnswerCache
from zoningsync.portal.behaviours import Behaviours
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

PAGE = {"where": "1=1", "outFields": "*", "orderByFields": "OBJECTID ASC", "f": "json",
        "resultOffset": "0", "resultRecordCount": "300"}
ASKED: list[tuple[str, dict[str, str]]] = [
    ("", {"f": "json"}),
    ("/0", {"f": "pjson"}),
    ("/1", {"f": "json"}),
    ("/0/query", PAGE),
    ("/0/query", {**PAGE, "resultOffset": "300"}),
    ("/0/query", {**PAGE, "f": "geojson"}),
    ("/0/query", {"where": "ZONING = 'R-4'", "returnCountOnly": "true", "f": "json"}),
    ("/0/query", {"where": "1=1", "returnIdsOnly": "true", "f": "pjson"}),
    ("/0/query", {"where": "nonsense ((", "f": "json"}),
    ("/1/query", {"where": "1=1", "outFields": "ZONE_CODE", "f": "json"}),
]


@pytest.fixture
async def portals() -> AsyncIterator[tuple[RunningPortal, RunningPortal]]:
    """One county served twice: with the answer cache, and building every answer."""
    county = County(900, seed=5)
    behaviours = Behaviours()
    async with run_portal(county, behaviours, answer_cache_mb=64) as cached, \
            run_portal(county, behaviours) as built:
        yield cached, built


async def body(http: aiohttp.ClientSession, portal: RunningPortal, path: str,
               params: dict[str, str]) -> bytes:
    async with http.get(portal.service_url + path, params=params) as answer:
        assert answer.status == 200
        return await answer.read()


async def admin(http: aiohttp.ClientSession, portal: RunningPortal, route: str,
                payload: dict[str, Any] | None = None) -> Any:
    async with http.post(portal.base_url + route, json=payload or {}) as answer:
        assert answer.status == 200
        return orjson.loads(await answer.read())


def cache_of(portal: RunningPortal) -> AnswerCache:
    assert portal.app.answers is not None
    return portal.app.answers


async def test_a_cached_answer_is_byte_identical_to_the_built_one(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    cached, built = portals
    for path, params in ASKED:
        first = await body(http, cached, path, params)
        again = await body(http, cached, path, params)
        assert first == again == await body(http, built, path, params), (path, params)
    assert cache_of(cached).hits == len(ASKED)


async def test_the_order_of_parameters_and_the_token_do_not_split_the_cache(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    cached, _ = portals
    first = await body(http, cached, "/0/query", PAGE)
    reordered = dict(reversed(list({**PAGE, "token": "anything"}.items())))
    assert await body(http, cached, "/0/query", reordered) == first
    assert cache_of(cached).stats()["answers"] == 1


async def test_a_publish_invalidates_every_cached_answer(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    cached, built = portals
    before = [await body(http, cached, path, params) for path, params in ASKED]
    await admin(http, cached, "/_portal/publish", {"fraction": 0.2, "seed": 3})
    after = [await body(http, cached, path, params) for path, params in ASKED]
    assert after == [await body(http, built, path, params) for path, params in ASKED]
    assert after[3] != before[3]


async def test_a_warm_publish_rebuilds_the_answers_it_held_before_answering(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    cached, built = portals
    for path, params in ASKED:
        await body(http, cached, path, params)
    summary = await admin(http, cached, "/_portal/publish",
                          {"fraction": 0.2, "seed": 3, "warm": True})
    assert summary["rewarmed"] == len(ASKED)
    hits = cache_of(cached).hits
    for path, params in ASKED:
        assert await body(http, cached, path, params) == await body(http, built, path, params)
    assert cache_of(cached).hits == hits + len(ASKED)


async def test_a_republish_invalidates_cached_answers(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    cached, built = portals
    ids = {"where": "1=1", "returnIdsOnly": "true", "f": "json"}
    before = await body(http, cached, "/0/query", ids)
    await admin(http, cached, "/_portal/republish")
    after = await body(http, cached, "/0/query", ids)
    assert after != before
    assert after == await body(http, built, "/0/query", ids)


async def test_a_behaviour_change_invalidates_cached_answers(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    cached, built = portals
    await body(http, cached, "/0/query", PAGE)
    await admin(http, cached, "/_portal/behaviour", {"max_record_count": 100})
    page = await body(http, cached, "/0/query", PAGE)
    assert len(orjson.loads(page)["features"]) == 100
    assert page == await body(http, built, "/0/query", PAGE)


def test_the_cache_evicts_its_oldest_answers_beyond_its_byte_limit() -> None:
    cache = AnswerCache(County(50, seed=1), Behaviours(), limit_bytes=25)
    for name in "abc":
        cache.answer(cache.key("query", 0, {"q": name}), lambda n=name: n.encode() * 10)
    assert cache.cached(cache.key("query", 0, {"q": "a"})) is None
    assert cache.cached(cache.key("query", 0, {"q": "c"})) == b"c" * 10
    assert cache.stats()["bytes"] == 20


async def test_the_portal_builds_every_answer_when_no_cache_is_asked_for(
        portals: tuple[RunningPortal, RunningPortal], http: aiohttp.ClientSession) -> None:
    _, built = portals
    async with http.get(built.base_url + "/_portal/answers") as answer:
        assert orjson.loads(await answer.read()) is None
    assert built.app.answers is None
