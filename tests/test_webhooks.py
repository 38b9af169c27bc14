"""The webhook receiver over real HTTP, signed by the portal's sender; coalescing by tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.portal_helpers import feed_config
from zoningsync.metrics import webhooks_total
from zoningsync.portal.changes import hook_payload, send_hook, sign
from zoningsync.webhooks import MAX_BODY_BYTES, HookCoalescer, hook_feeds, webhook_app

SECRET = "s3cret-for-hooks"
SECRET_ENV = "ZS_TEST_HOOK_SECRET"


class Receiver:
    def __init__(self, server: TestServer, hooked: list[str]) -> None:
        self.server = server
        self.hooked = hooked

    def url(self, path: str = "test-county/parcels") -> str:
        return str(self.server.make_url(f"/hooks/{path}"))


@pytest.fixture
async def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    feeds = [feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/W/FeatureServer/0",
                         extra=f'webhook_secret_env = "{SECRET_ENV}"')]
    hooked: list[str] = []
    server = TestServer(webhook_app(hook_feeds(feeds), hooked.append), host="127.0.0.1")
    await server.start_server()
    try:
        yield Receiver(server, hooked)
    finally:
        await server.close()


def counted(feed: str, outcome: str) -> float:
    return webhooks_total.labels(feed, outcome)._value.get()


BODY = hook_payload("http://127.0.0.1:9/arcgis/rest/services/W/FeatureServer", 0, [1001])


async def test_a_well_signed_hook_is_accepted_and_asks_for_its_feed(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    before = counted("test-county/parcels", "accepted")
    assert await send_hook(http, receiver.url(), BODY, SECRET) == 202
    assert receiver.hooked == ["test-county/parcels"]
    assert counted("test-county/parcels", "accepted") == before + 1


async def test_a_badly_signed_hook_is_refused_and_asks_for_nothing(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    assert await send_hook(http, receiver.url(), BODY, "another secret") == 401
    assert receiver.hooked == []


async def test_an_unsigned_hook_is_refused(receiver: Receiver,
                                           http: aiohttp.ClientSession) -> None:
    assert await send_hook(http, receiver.url(), BODY, None) == 401
    assert receiver.hooked == []


async def test_a_hook_for_an_unknown_feed_is_not_found(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    assert await send_hook(http, receiver.url("test-county/nothing"), BODY, SECRET) == 404
    assert receiver.hooked == []


async def test_a_body_over_one_mebibyte_is_too_large(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    assert await send_hook(http, receiver.url(), body, SECRET) == 413
    assert receiver.hooked == []


async def test_the_challenge_response_check_is_answered_with_the_signed_token(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    async with http.get(receiver.url(), params={"crc_token": "abc123"}) as response:
        assert response.status == 200
        assert await response.json() == {"response_token": sign(b"abc123", SECRET)}
    assert receiver.hooked == []


def test_a_signature_is_sha256_and_the_base64_hmac_of_the_body() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style.
    assert sign(b"The quick brown fox jumps over the lazy dog", "key") == (
        "sha256=97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=")


def test_feeds_without_a_secret_variable_take_no_hooks(tmp_path: Path) -> None:
    feed = feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/W/FeatureServer/0")
    assert hook_feeds([feed]) == {}


# Each step: (event, time in s, run requested by it). Events: "hook", "start", "end".
COALESCING = {
    "ten hooks in a second give one run": (
        [("hook", 0.0, True)] + [("hook", 0.1 * i, False) for i in range(1, 10)]),
    "hooks while the run is queued are absorbed": [
        ("hook", 0.0, True), ("hook", 5.0, False), ("start", 6.0, False),
        ("end", 8.0, False)],
    "a hook in the run's first second is absorbed": [
        ("hook", 0.0, True), ("start", 0.2, False), ("hook", 0.9, False),
        ("end", 3.0, False)],
    "a hook during the run gives exactly one more run after it": [
        ("hook", 0.0, True), ("start", 0.1, False), ("hook", 2.0, False),
        ("hook", 2.5, False), ("hook", 3.0, False), ("end", 4.0, True),
        ("start", 4.1, False), ("end", 5.0, False)],
    "a hook after the run ends starts a new one": [
        ("hook", 0.0, True), ("start", 0.1, False), ("end", 1.0, False),
        ("hook", 1.5, True)],
    "fifty hooks in a burst across a run give at most two runs": (
        [("hook", 0.0, True), ("start", 0.05, False)]
        + [("hook", 0.05 + 0.04 * i, False) for i in range(1, 50)]
        + [("end", 3.0, True), ("start", 3.1, False), ("end", 4.0, False)]),
}


@pytest.mark.parametrize("steps", COALESCING.values(), ids=COALESCING.keys())
def test_hooks_coalesce_into_run_requests(steps: list[tuple[str, float, bool]]) -> None:
    coalescer = HookCoalescer()
    for event, now, requested in steps:
        if event == "hook":
            assert coalescer.hook("j/f", now) is requested, (event, now)
        elif event == "start":
            coalescer.run_started("j/f", now)
        else:
            assert coalescer.run_finished("j/f") is requested, (event, now)


def test_feeds_coalesce_apart() -> None:
    coalescer = HookCoalescer()
    assert coalescer.hook("j/a", 0.0) and coalescer.hook("j/b", 0.0)
