"""The webhook receiver: signed ArcGIS feature-service hooks ask for a feed's run.

`webhook_app(feeds_by_path, on_hook)` is an aiohttp application the daemon mounts
(`ZONINGSYNC_WEBHOOKS=127.0.0.1:9465` or `[webhooks]`): `POST
/hooks/JURISDICTION/FEED`. A feed accepts pushes when it names its secret's
environment variable (`webhook_secret_env`), so no secret sits in a source file.
ArcGIS signs the raw body: `x-esriHook-Signature: sha256=<base64 HMAC-SHA256>`,
compared here in constant time. When a hook is registered, ArcGIS first sends a
Challenge-Response Check, a GET with `crc_token`, answered with
`{"response_token": "sha256=<base64 HMAC-SHA256 of the token>"}`.

Answers: unknown feed 404, body over 1 MiB 413, bad or missing signature 401
(logged without the body), anything else 202, sent before any work; only then
is `on_hook(feed_id)` called. The payload (its `changesUrl`) is not read: a run
uses its own stored generation. Every outcome is counted in
`zoningsync_webhooks_total{feed,outcome}` (feed `unknown` for paths that name none).

`HookCoalescer` turns a stream of hooks into run requests (pure: time is a
parameter): a burst gives one run; a hook during a run, after its first second,
gives exactly one more run after it; hooks while a run is queued, or in its first
second, are absorbed by it. Only this daemon's runs are seen starting and ending;
a request another daemon claims stops absorbing after `QUEUED_EXPIRE_S`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from zoningsync.config import FeedConfig
from zoningsync.metrics import webhooks_total
from zoningsync.redact import redact, register_secret

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADER = "x-esriHook-Signature"
# A run absorbs the hooks of its first second: the edits they announce were
# most likely committed before it asked for changes.
ABSORB_S = 1.0
# A run asked for and not seen starting this long after the hook that asked
# (another daemon took the claim, or this one has not got to it) no longer
# absorbs hooks: the next one asks again, which at worst adds one run after the
# other daemon's, and asking again for an unclaimed feed changes nothing.
QUEUED_EXPIRE_S = 10.0
UNKNOWN_FEED = "unknown"


def signature(body: bytes, secret: str) -> str:
    """What ArcGIS sends for `body` under `secret`: sha256= and the base64 HMAC-SHA256."""
    return "sha256=" + base64.b64encode(
        hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def hook_feeds(feeds: list[FeedConfig]) -> dict[str, FeedConfig]:
    """The feeds that accept pushes, by the `JURISDICTION/FEED` of their hook path."""
    return {feed.full_id: feed for feed in feeds if feed.webhook_secret_env}


def webhook_app(feeds_by_path: Mapping[str, FeedConfig],
                on_hook: Callable[[str], None]) -> web.Application:
    """The receiver for `feeds_by_path` (see `hook_feeds`); `on_hook` runs after each 202."""

    def feed_of(request: web.Request) -> FeedConfig | None:
        path = f"{request.match_info['jurisdiction']}/{request.match_info['feed']}"
        return feeds_by_path.get(path)

    def secret_of(feed: FeedConfig) -> str | None:
        secret = os.environ.get(feed.webhook_secret_env or "")
        if not secret:
            log.error("a hook arrived but its secret's environment variable is not set",
                      feed=feed.full_id, variable=feed.webhook_secret_env)
            return None
        register_secret(secret)
        return secret

    def outcome(feed: str, what: str) -> None:
        webhooks_total.labels(feed, what).inc()

    async def challenge(request: web.Request) -> web.Response:
        feed = feed_of(request)
        if feed is None:
            outcome(UNKNOWN_FEED, "unknown_feed")
            return web.Response(status=404, text="no such feed accepts hooks\n")
        token = request.query.get("crc_token")
        if not token:
            outcome(feed.full_id, "bad_request")
            return web.Response(status=400, text="a challenge needs crc_token\n")
        secret = secret_of(feed)
        if secret is None:
            outcome(feed.full_id, "no_secret")
            return web.Response(status=503, text="the feed's secret is not configured\n")
        outcome(feed.full_id, "challenge")
        return web.json_response({"response_token": signature(token.encode(), secret)})

    async def receive(request: web.Request) -> web.StreamResponse:
        feed = feed_of(request)
        if feed is None:
            outcome(UNKNOWN_FEED, "unknown_feed")
            return web.Response(status=404, text="no such feed accepts hooks\n")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            outcome(feed.full_id, "too_large")
            return web.Response(status=413, text="a hook body is at most 1 MiB\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            outcome(feed.full_id, "too_large")
            return web.Response(status=413, text="a hook body is at most 1 MiB\n")
        secret = secret_of(feed)
        if secret is None:
            outcome(feed.full_id, "no_secret")
            return web.Response(status=503, text="the feed's secret is not configured\n")
        sent = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(sent.encode(), signature(body, secret).encode()):
            outcome(feed.full_id, "bad_signature")
            log.warning("a hook with a bad or missing signature was refused",
                        feed=feed.full_id, remote=redact(request.remote or "?"),
                        bytes=len(body), signed=bool(sent))
            return web.Response(status=401, text="bad or missing x-esriHook-Signature\n")
        outcome(feed.full_id, "accepted")
        response = web.Response(status=202, text="accepted\n")
        await response.prepare(request)
        await response.write_eof()
        try:
            on_hook(feed.full_id)
        except Exception as exc:  # the hook is answered; a failing handler must not bubble
            log.error("handling an accepted hook failed", feed=feed.full_id,
                      error=redact(f"{type(exc).__name__}: {exc}"))
        return response

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/hooks/{jurisdiction}/{feed}", challenge)
    app.router.add_post("/hooks/{jurisdiction}/{feed}", receive)
    return app


@dataclass
class _FeedHooks:
    queued_at: float | None = None
    running_since: float | None = None
    # The latest hook after the running run's first second: it asks for one more.
    again_at: float | None = None


class HookCoalescer:
    """Hooks in, run requests out, per feed; the caller says when runs start and end."""

    def __init__(self, absorb_s: float = ABSORB_S,
                 queued_expire_s: float = QUEUED_EXPIRE_S) -> None:
        self.absorb_s = absorb_s
        self.queued_expire_s = queued_expire_s
        self._feeds: dict[str, _FeedHooks] = {}

    def hook(self, feed: str, now: float) -> bool:
        """A valid hook arrived; True when it asks for a new run now."""
        state = self._feeds.setdefault(feed, _FeedHooks())
        if state.queued_at is not None and now - state.queued_at < self.queued_expire_s:
            return False
        if state.running_since is not None:
            if now - state.running_since >= self.absorb_s:
                state.again_at = now
            return False
        state.queued_at = now
        return True

    def run_started(self, feed: str, now: float) -> None:
        state = self._feeds.setdefault(feed, _FeedHooks())
        state.queued_at, state.running_since = None, now

    def run_finished(self, feed: str) -> bool:
        """The feed's run ended; True when hooks during it ask for one more run now."""
        state = self._feeds.setdefault(feed, _FeedHooks())
        state.running_since = None
        if state.again_at is not None:
            state.queued_at, state.again_at = state.again_at, None
            return True
        return False

    def dropped(self, feed: str) -> None:
        """The run asked for will not come (the feed is paused, or asking failed)."""
        state = self._feeds.setdefault(feed, _FeedHooks())
        state.queued_at = None
