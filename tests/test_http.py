"""The fetcher against real local servers that fail on a script."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from zoningsync import __version__
from zoningsync.errors import CircuitOpen, FetchError, TokenRejected, UpstreamRefused
from zoningsync.http import (
    MAX_RETRY_AFTER_S,
    THREAD_PARSE_BYTES,
    AnswerTooBig,
    BadAnswer,
    Fetcher,
    FetchStats,
    HostLimits,
    RetryPolicy,
    retry_after_seconds,
)

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAST = RetryPolicy(max_retries=4, timeout_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.05)
ROOMY = HostLimits(requests_per_second=50.0, burst=10, max_concurrency=8)


def ok(value: Any) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(value), content_type="application/json")

    return reply


def status(code: int, headers: dict[str, str] | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text="nope", headers=headers)

    return reply


def raw(body: bytes, content_type: str = "application/json") -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type)

    return reply


def slow(seconds: float, then: Reply) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await then(request)

    return reply


HTML_PAGE = b"<!DOCTYPE html><html><body>Access denied by firewall</body></html>"
TRUNCATED = b'{"features": [{"attributes": {"OBJECTID": 1}}, {"attri'


@dataclass
class Hit:
    path: str
    at: float
    query: dict[str, str]
    form: dict[str, str]
    user_agent: str


@dataclass
class Upstream:
    """A local county server: each path answers from a script, the last reply repeats."""

    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    base: str = ""
    host: str = ""

    def script(self, path: str, *replies: Reply) -> str:
        self.scripts[path] = list(replies)
        return self.base + path

    def hits_on(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.hits.append(
            Hit(request.path, time.monotonic(), dict(request.query), form,
                request.headers.get("User-Agent", ""))
        )
        script = self.scripts[request.path]
        reply = script.pop(0) if len(script) > 1 else script[0]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await reply(request)
        finally:
            self.in_flight -= 1


async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    server = await serve(up.handle)
    up.base = str(server.make_url("")).rstrip("/")
    up.host = f"127.0.0.1:{server.port}"
    yield up
    await server.close()


@pytest.fixture
async def fetcher(upstream: Upstream) -> AsyncIterator[Fetcher]:
    async with Fetcher() as f:
        f.set_host_limits(upstream.host, ROOMY)
        yield f


def within_bucket(arrivals: list[float], rate: float, burst: int) -> bool:
    """No window of arrivals holds more than burst + rate * its length (+50 ms of latency)."""
    times = sorted(arrivals)
    return all(
        j - i + 1 <= burst + rate * (times[j] - times[i] + 0.05)
        for i in range(len(times))
        for j in range(i, len(times))
    )


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"condition still false after {timeout_s} s")


# --- answers -------------------------------------------------------------------------


async def test_every_request_carries_an_honest_user_agent(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/layer", ok({}))
    await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    assert upstream.hits[0].user_agent.startswith(f"zoningsync/{__version__} ")


async def test_get_json_sends_params_and_returns_the_parsed_answer(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    answer = {"count": 3, "features": [1, 2, 3]}
    url = upstream.script("/query", ok(answer))
    stats = FetchStats()
    got = await fetcher.get_json(url, {"where": "1=1", "f": "json"}, retry=FAST, stats=stats)
    assert got == answer
    assert upstream.hits[0].query == {"where": "1=1", "f": "json"}
    assert (stats.requests, stats.retries, stats.bytes) == (1, 0, len(orjson.dumps(answer)))


async def test_a_large_answer_is_parsed_off_the_event_loop_to_the_same_value(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    answer = {"features": [{"attributes": {"OBJECTID": n, "ZONE": "R-1"}} for n in range(10_000)]}
    assert len(orjson.dumps(answer)) > THREAD_PARSE_BYTES
    url = upstream.script("/query", ok(answer))
    assert await fetcher.get_json(url, retry=FAST, stats=FetchStats()) == answer


async def test_a_large_answer_is_decoded_on_the_executor_the_fetcher_was_given(
    upstream: Upstream,
) -> None:
    answer = {"features": [{"attributes": {"OBJECTID": n, "ZONE": "R-1"}} for n in range(10_000)]}
    url = upstream.script("/query", ok(answer))
    threads: list[str] = []

    def remember_thread() -> None:
        threads.append(threading.current_thread().name)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-pool",
                            initializer=remember_thread) as pool:
        async with Fetcher(decode_executor=pool) as fetcher:
            assert await fetcher.get_json(url, retry=FAST, stats=FetchStats()) == answer
    assert threads == ["run-pool_0"]


async def test_post_json_sends_the_data_form_encoded(upstream: Upstream, fetcher: Fetcher) -> None:
    url = upstream.script("/query", ok({"ok": True}))
    data = {"objectIds": ",".join(map(str, range(500))), "f": "json"}
    got = await fetcher.post_json(url, data, retry=FAST, stats=FetchStats())
    assert got == {"ok": True}
    assert upstream.hits[0].form == data


async def test_get_bytes_returns_any_body_unchanged(upstream: Upstream, fetcher: Fetcher) -> None:
    url = upstream.script("/cases.html", raw(HTML_PAGE, "text/html"))
    assert await fetcher.get_bytes(url, retry=FAST, stats=FetchStats()) == HTML_PAGE


# --- retries -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_until_an_answer_arrives(
    upstream: Upstream, fetcher: Fetcher, code: int
) -> None:
    url = upstream.script("/query", status(code), status(code), ok({"n": 1}))
    stats = FetchStats()
    assert await fetcher.get_json(url, retry=FAST, stats=stats) == {"n": 1}
    assert (stats.requests, stats.retries) == (3, 2)


async def test_truncated_json_is_retried(upstream: Upstream, fetcher: Fetcher) -> None:
    url = upstream.script("/query", raw(TRUNCATED), ok({"n": 1}))
    stats = FetchStats()
    assert await fetcher.get_json(url, retry=FAST, stats=stats) == {"n": 1}
    assert stats.retries == 1


@pytest.mark.parametrize(
    "page", [raw(HTML_PAGE, "text/html"), raw(b"\n  " + HTML_PAGE, "application/json")],
    ids=["html-content-type", "json-content-type"],
)
async def test_an_html_page_served_with_200_is_retried(
    upstream: Upstream, fetcher: Fetcher, page: Reply
) -> None:
    url = upstream.script("/query", page, ok({"n": 1}))
    stats = FetchStats()
    assert await fetcher.get_json(url, retry=FAST, stats=stats) == {"n": 1}
    assert stats.retries == 1


def no_error_key(answer: Any) -> None:
    if "error" in answer:
        raise BadAnswer(f"server error {answer['error']['code']}")


async def test_a_retryable_bad_answer_from_check_is_retried(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/query", ok({"error": {"code": 500}}), ok({"n": 1}))
    stats = FetchStats()
    assert await fetcher.get_json(url, retry=FAST, stats=stats, check=no_error_key) == {"n": 1}
    assert stats.retries == 1


async def test_a_final_bad_answer_fails_at_once_with_upstream_refused(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    def refuse(answer: Any) -> None:
        raise BadAnswer("layer has no geometry", retryable=False)

    url = upstream.script("/query", ok({"n": 1}))
    with pytest.raises(UpstreamRefused, match=r"/query: HTTP 200 but .*layer has no geometry"):
        await fetcher.get_json(url, retry=FAST, stats=FetchStats(), check=refuse)
    assert len(upstream.hits) == 1


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410])
async def test_client_errors_fail_at_once_with_upstream_refused(
    upstream: Upstream, fetcher: Fetcher, code: int
) -> None:
    url = upstream.script("/gone", status(code))
    with pytest.raises(UpstreamRefused, match=rf"/gone: HTTP {code}"):
        await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    assert len(upstream.hits) == 1


@pytest.mark.parametrize("code", [498, 499])
async def test_token_statuses_fail_at_once_with_token_rejected(
    upstream: Upstream, fetcher: Fetcher, code: int
) -> None:
    url = upstream.script("/query", status(code))
    with pytest.raises(TokenRejected, match=rf"HTTP {code}"):
        await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    assert len(upstream.hits) == 1


async def test_exhausted_retries_raise_one_line_naming_url_attempts_and_last_reason(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/query", status(502))
    stats = FetchStats()
    policy = RetryPolicy(max_retries=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    with pytest.raises(FetchError) as caught:
        await fetcher.get_json(url, retry=policy, stats=stats)
    assert type(caught.value) is FetchError
    assert caught.value.message == f"{url}: no usable answer after 3 attempts; last: HTTP 502"
    assert (stats.requests, stats.retries) == (3, 2)


async def test_each_retry_is_logged_as_a_warning_with_attempt_and_reason(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/query", status(503), raw(TRUNCATED), ok({}))
    with capture_logs() as logs:
        await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    retries = [entry for entry in logs if entry["event"] == "http.retry"]
    assert [(e["log_level"], e["attempt"]) for e in retries] == [("warning", 1), ("warning", 2)]
    assert retries[0]["reason"] == "HTTP 503"
    assert retries[1]["reason"].startswith("invalid JSON")


async def test_an_answer_slower_than_the_timeout_is_retried(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/query", slow(2.0, ok({"late": True})), ok({"n": 1}))
    policy = RetryPolicy(max_retries=2, timeout_s=0.3, backoff_initial_s=0.01)
    stats = FetchStats()
    assert await fetcher.get_json(url, retry=policy, stats=stats) == {"n": 1}
    assert stats.retries == 1


async def test_an_unreachable_host_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = RetryPolicy(max_retries=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    stats = FetchStats()
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match=r"after 3 attempts; last: ClientConnectorError"):
            await fetcher.get_json(f"http://127.0.0.1:{port}/q", retry=policy, stats=stats)
    assert stats.requests == 3


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/layer", "http:///no-host"])
async def test_an_invalid_url_fails_at_once(fetcher: Fetcher, url: str) -> None:
    stats = FetchStats()
    with pytest.raises(FetchError, match=r"not a valid URL|not an http"):
        await fetcher.get_json(url, retry=FAST, stats=stats)
    assert stats.retries == 0


async def test_a_cancelled_fetch_leaves_the_host_usable(upstream: Upstream) -> None:
    slow_url = upstream.script("/slow", slow(10.0, ok({})))
    fast_url = upstream.script("/fast", ok({"n": 1}))
    async with Fetcher(breaker_threshold=1) as fetcher:
        fetcher.set_host_limits(upstream.host, HostLimits(50.0, burst=10, max_concurrency=1))
        stuck = asyncio.create_task(fetcher.get_json(slow_url, retry=FAST, stats=FetchStats()))
        await eventually(lambda: upstream.in_flight == 1)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert await fetcher.get_json(fast_url, retry=FAST, stats=FetchStats()) == {"n": 1}


# --- size limit ----------------------------------------------------------------------


async def announced(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"[" + b"0," * 2500 + b"0]", content_type="application/json")


async def streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(20):
        await response.write(b" " * 500)
    await response.write_eof()
    return response


@pytest.mark.parametrize("reply", [announced, streamed], ids=["announced", "streamed"])
async def test_an_answer_over_the_size_limit_fails_without_retry(
    upstream: Upstream, reply: Reply
) -> None:
    url = upstream.script("/huge", reply)
    stats = FetchStats()
    async with Fetcher(max_response_bytes=1000) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        with pytest.raises(FetchError, match="over the 1000-byte limit"):
            await fetcher.get_json(url, retry=FAST, stats=stats)
    assert stats.requests == 1
    assert stats.bytes <= 1000 + 64 * 1024


async def test_a_request_cap_below_the_fetcher_limit_stops_reading_at_the_cap(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/huge", streamed)
    stats = FetchStats()
    with pytest.raises(AnswerTooBig, match="over the 5000-byte limit"):
        await fetcher.get_json(url, retry=FAST, stats=stats, max_bytes=5000)
    assert stats.requests == 1
    assert stats.bytes <= 5000 + 64 * 1024


async def test_the_fetcher_limit_bounds_a_larger_request_cap(upstream: Upstream) -> None:
    url = upstream.script("/huge", announced)
    async with Fetcher(max_response_bytes=1000) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        with pytest.raises(AnswerTooBig, match="over the 1000-byte limit"):
            await fetcher.get_bytes(url, retry=FAST, stats=FetchStats(), max_bytes=10**9)


# --- decoding ------------------------------------------------------------------------


def nested_too_deep(body: bytes) -> object:
    raise RecursionError("maximum recursion depth exceeded while deserializing an object")


async def test_whatever_a_decoder_raises_on_a_body_is_a_bad_answer_retried_then_reported(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/deep", raw(b"[" * 5000 + b"]" * 5000))
    stats = FetchStats()
    with pytest.raises(FetchError, match=r"after 5 attempts; last: undecodable JSON "
                                         r"\(RecursionError"):
        await fetcher.get_json(url, retry=FAST, stats=stats, decode=nested_too_deep)
    assert stats.retries == FAST.max_retries


# --- secrets -------------------------------------------------------------------------

SECRET = "s3cr3t-Tok3n"


@pytest.mark.parametrize("how", ["params", "inline", "form"])
async def test_a_token_never_appears_in_logs_or_error_messages(
    upstream: Upstream, fetcher: Fetcher, how: str
) -> None:
    url = upstream.script("/secure", status(503), status(403))
    with capture_logs() as logs, pytest.raises(UpstreamRefused) as caught:
        if how == "params":
            await fetcher.get_json(url, {"TOKEN": SECRET}, retry=FAST, stats=FetchStats())
        elif how == "inline":
            await fetcher.get_json(f"{url}?f=json&token={SECRET}", retry=FAST, stats=FetchStats())
        else:
            await fetcher.post_json(url, {"token": SECRET}, retry=FAST, stats=FetchStats())
    assert len(upstream.hits) == 2
    assert logs
    assert SECRET not in repr(logs)
    assert SECRET not in str(caught.value)
    if how != "form":
        assert "token=***" in str(caught.value).lower()


# --- politeness ----------------------------------------------------------------------


async def test_requests_never_exceed_the_host_token_bucket(upstream: Upstream) -> None:
    url = upstream.script("/q", ok({}))
    async with Fetcher() as fetcher:
        fetcher.set_host_limits(upstream.host, HostLimits(20.0, burst=5, max_concurrency=10))
        await asyncio.gather(
            *(fetcher.get_json(url, retry=FAST, stats=FetchStats()) for _ in range(30))
        )
    arrivals = [hit.at for hit in upstream.hits]
    assert len(arrivals) == 30
    assert within_bucket(arrivals, rate=20.0, burst=5)


async def test_retries_take_tokens_from_the_same_bucket(upstream: Upstream) -> None:
    url = upstream.script("/q", *([status(500)] * 9), ok({}))
    async with Fetcher(breaker_threshold=100) as fetcher:
        fetcher.set_host_limits(upstream.host, HostLimits(10.0, burst=2))
        policy = RetryPolicy(max_retries=12, backoff_initial_s=0.001, backoff_max_s=0.001)
        await fetcher.get_json(url, retry=policy, stats=FetchStats())
    assert within_bucket([hit.at for hit in upstream.hits], rate=10.0, burst=2)


async def test_unconfigured_hosts_get_two_requests_per_second_with_burst_four(
    upstream: Upstream,
) -> None:
    url = upstream.script("/q", ok({}))
    async with Fetcher() as fetcher:
        assert fetcher.limits_for(upstream.host) == HostLimits(2.0, burst=4)
        await asyncio.gather(
            *(fetcher.get_json(url, retry=FAST, stats=FetchStats()) for _ in range(6))
        )
    assert within_bucket([hit.at for hit in upstream.hits], rate=2.0, burst=4)


async def test_concurrent_requests_to_a_host_are_bounded(upstream: Upstream) -> None:
    url = upstream.script("/q", slow(0.1, ok({})))
    async with Fetcher() as fetcher:
        fetcher.set_host_limits(upstream.host, HostLimits(100.0, burst=100, max_concurrency=2))
        await asyncio.gather(
            *(fetcher.get_json(url, retry=FAST, stats=FetchStats()) for _ in range(8))
        )
    assert upstream.max_in_flight == 2


async def test_setting_host_limits_twice_keeps_the_stricter_of_each() -> None:
    async with Fetcher() as fetcher:
        fetcher.set_host_limits("GIS.example.org", HostLimits(5.0, burst=2, max_concurrency=8))
        fetcher.set_host_limits("gis.example.org", HostLimits(1.0, burst=6, max_concurrency=2))
        assert fetcher.limits_for("gis.example.org") == HostLimits(1.0, 2, 2)


async def test_retry_after_delays_the_next_request_and_every_request_to_the_host(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    throttled_url = upstream.script("/throttled", status(429, {"Retry-After": "1"}), ok({}))
    other_url = upstream.script("/other", ok({}))
    throttled_stats = FetchStats()
    throttled = asyncio.create_task(
        fetcher.get_json(throttled_url, retry=FAST, stats=throttled_stats)
    )
    await eventually(lambda: throttled_stats.retries == 1)
    others = [fetcher.get_json(other_url, retry=FAST, stats=FetchStats()) for _ in range(3)]
    await asyncio.gather(throttled, *others)
    refused_at, retried_at = (hit.at for hit in upstream.hits_on("/throttled"))
    assert retried_at - refused_at >= 0.99
    assert all(hit.at - refused_at >= 0.99 for hit in upstream.hits_on("/other"))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("Sun, 22 Nov 2026 18:00:30 GMT", 30.0),
        ("Sun, 22 Nov 2026 17:59:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 11, 22, 18, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now) == seconds


@pytest.mark.parametrize(("header", "shown"), [("1e308", "1e+308 s"), ("inf", "inf s")])
async def test_an_endless_retry_after_fails_at_once_and_pauses_the_host_ten_minutes_at_most(
    upstream: Upstream, fetcher: Fetcher, header: str, shown: str
) -> None:
    url = upstream.script("/down", status(503, {"Retry-After": header}))
    with pytest.raises(FetchError, match=re.escape(f"asks to wait {shown}, longer than")):
        await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    bucket = fetcher._host(url).bucket  # the host every feed on it shares
    assert bucket.take(time.monotonic()) <= MAX_RETRY_AFTER_S


def test_a_retry_after_that_is_not_a_number_is_no_retry_after() -> None:
    assert retry_after_seconds("nan", datetime(2026, 11, 22, tzinfo=UTC)) is None


async def test_a_retry_after_longer_than_ten_minutes_fails_the_fetch(
    upstream: Upstream, fetcher: Fetcher
) -> None:
    url = upstream.script("/down", status(503, {"Retry-After": "86400"}))
    with pytest.raises(FetchError, match=r"asks to wait 86400 s"):
        await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    assert len(upstream.hits) == 1


# --- circuit breaker -----------------------------------------------------------------


async def test_the_breaker_opens_after_consecutive_failures_and_then_fails_fast(
    upstream: Upstream,
) -> None:
    url = upstream.script("/q", status(503))
    policy = RetryPolicy(max_retries=10, backoff_initial_s=0.001, backoff_max_s=0.001)
    async with Fetcher(breaker_threshold=3, breaker_cooldown_s=30.0) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        with pytest.raises(CircuitOpen, match=rf"{upstream.host}: 3 consecutive .* \(in 30 s\)"):
            await fetcher.get_json(url, retry=policy, stats=FetchStats())
        stats = FetchStats()
        with pytest.raises(CircuitOpen):
            await fetcher.get_json(url, retry=policy, stats=stats)
    assert len(upstream.hits) == 3
    assert stats.requests == 0


async def test_the_breakers_refusal_names_the_hosts_last_failures(upstream: Upstream) -> None:
    url = upstream.script("/q", status(502), status(500), slow(1.0, ok({})))
    policy = RetryPolicy(max_retries=10, timeout_s=0.2, backoff_initial_s=0.001,
                         backoff_max_s=0.001)
    async with Fetcher(breaker_threshold=3) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        with pytest.raises(CircuitOpen) as refused:
            await fetcher.get_json(url, retry=policy, stats=FetchStats())
    assert ("3 consecutive failed requests (last: HTTP 502; HTTP 500; no answer within 0.2 s)"
            in refused.value.message)


async def test_requests_queued_for_a_failing_host_are_not_sent_once_the_breaker_opens(
    upstream: Upstream,
) -> None:
    url = upstream.script("/q", slow(0.05, status(503)))
    once = RetryPolicy(max_retries=0)
    async with Fetcher(breaker_threshold=2) as fetcher:
        fetcher.set_host_limits(upstream.host, HostLimits(50.0, burst=10, max_concurrency=1))
        outcomes = await asyncio.gather(
            *(fetcher.get_json(url, retry=once, stats=FetchStats()) for _ in range(6)),
            return_exceptions=True,
        )
    assert [type(o) for o in outcomes] == [FetchError] * 2 + [CircuitOpen] * 4
    assert len(upstream.hits) == 2


async def test_a_successful_trial_after_the_cooldown_closes_the_breaker(
    upstream: Upstream,
) -> None:
    url = upstream.script("/q", status(500), status(500), ok({"n": 1}))
    policy = RetryPolicy(max_retries=10, backoff_initial_s=0.001, backoff_max_s=0.001)
    async with Fetcher(breaker_threshold=2, breaker_cooldown_s=0.3) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        with pytest.raises(CircuitOpen):
            await fetcher.get_json(url, retry=policy, stats=FetchStats())
        await asyncio.sleep(0.35)
        assert await fetcher.get_json(url, retry=policy, stats=FetchStats()) == {"n": 1}
        assert await fetcher.get_json(url, retry=policy, stats=FetchStats()) == {"n": 1}
    assert len(upstream.hits) == 4


async def test_throttle_answers_do_not_open_the_breaker(upstream: Upstream) -> None:
    throttle = status(429, {"Retry-After": "0"})
    url = upstream.script("/q", throttle, throttle, throttle, ok({"n": 1}))
    async with Fetcher(breaker_threshold=2) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        assert await fetcher.get_json(url, retry=FAST, stats=FetchStats()) == {"n": 1}


async def test_a_success_resets_the_consecutive_failure_count(upstream: Upstream) -> None:
    url = upstream.script("/q", status(500), ok({}), status(500), ok({}), status(500), ok({}))
    async with Fetcher(breaker_threshold=2) as fetcher:
        fetcher.set_host_limits(upstream.host, ROOMY)
        for _ in range(3):
            await fetcher.get_json(url, retry=FAST, stats=FetchStats())
    assert len(upstream.hits) == 6


# --- all together --------------------------------------------------------------------


@dataclass
class FaultyLayer:
    """Answers /feature/<n> correctly, except ~12% of attempts fail in a seeded way."""

    seed: int = 20261122
    attempts: dict[int, int] = field(default_factory=dict)
    faults: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["tail"].rsplit("/", 1)[1])
        attempt = self.attempts[n] = self.attempts.get(n, 0) + 1
        rng = random.Random(f"{self.seed}:{n}:{attempt}")
        if rng.random() >= 0.12:
            return await ok({"id": n, "square": n * n})(request)
        self.faults += 1
        fault = rng.choice(
            [
                status(503),
                status(429, {"Retry-After": "0"}),
                status(429, {"Retry-After": "1"}),
                raw(TRUNCATED),
                raw(HTML_PAGE, "text/html"),
                ok({"error": {"code": 500, "message": "Unable to complete operation."}}),
            ]
        )
        return await fault(request)


async def test_the_default_policy_rides_through_random_faults_to_exact_answers() -> None:
    layer = FaultyLayer()
    server = await serve(layer.handle)
    stats = FetchStats()
    policy = RetryPolicy(backoff_initial_s=0.02, backoff_max_s=1.0)
    try:
        async with Fetcher() as fetcher:
            fetcher.set_host_limits(f"127.0.0.1:{server.port}", HostLimits(400.0, 20, 8))
            base = str(server.make_url("/feature"))
            answers = await asyncio.gather(
                *(
                    fetcher.get_json(f"{base}/{n}", retry=policy, stats=stats, check=no_error_key)
                    for n in range(150)
                )
            )
    finally:
        await server.close()
    assert answers == [{"id": n, "square": n * n} for n in range(150)]
    assert layer.faults >= 10
    assert (stats.requests, stats.retries) == (150 + layer.faults, layer.faults)
