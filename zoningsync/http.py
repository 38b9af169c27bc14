"""The one HTTP fetcher every producer uses.

County servers are slow, flaky and shared by many feeds, so every request goes
through the same per-host machinery: a token bucket (`ratelimit.py`) that all
feeds on a host share, a concurrency bound, retries with full-jitter backoff for
answers that asking again may fix, Retry-After honoured for the whole host, and
a circuit breaker (`breaker.py`) that stops hammering a host that keeps failing.

An answer is only "good" when the caller can use it: JSON endpoints often answer
HTTP 200 with an HTML firewall page, a truncated body or a JSON error, so those
are retried too, and the caller's `check` callback can ask for a retry by
raising `BadAnswer`. Every message and log line passes `redact.redact()`, and
the values of secret-named query or form parameters (`token`) are registered
with it, so a server that echoes a token in its error page shows it nowhere.

Answers are capped by what the caller asked for (`max_bytes`: a few MiB for
metadata, more for id lists and pages), under the fetcher-wide ceiling: a body
that never ends costs at most its cap, and a too-big answer fails at once,
naming the limit, since it would be as big next time. A body that does not
decode (invalid, or nested too deep for the decoder) is a bad answer like any
other: retried, then a `FetchError`.

Every request (by its status, or `timeout`/`error` when none came), retry and
wait for a token is counted in `metrics.py`'s series under the host's netloc
(userinfo dropped), never under a URL, so the labels stay bounded and secret-free.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from zoningsync import __version__, metrics
from zoningsync.breaker import CircuitBreaker
from zoningsync.errors import FetchError, TokenRejected, UpstreamRefused, ZoningsyncError
from zoningsync.ratelimit import DEFAULT_LIMITS, HostLimits, TokenBucket
from zoningsync.redact import redact, register_secret_params

__all__ = ["AnswerTooBig", "BadAnswer", "FetchStats", "Fetcher", "HostLimits", "RetryPolicy",
           "retry_after_seconds"]

log = structlog.get_logger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TOKEN_STATUSES = frozenset({498, 499})
# A server asking for a longer pause than this is down for maintenance: fail the
# run (the scheduler tries again later) instead of holding a feed for hours.
MAX_RETRY_AFTER_S = 600.0
# orjson parses coordinate-heavy ArcGIS pages at about 100 MB/s (measured on the
# Kent fixture grown to 1 MB: 10 ms); beyond this size a body is parsed in a worker
# thread so that the event loop never stalls for much more than a millisecond.
THREAD_PARSE_BYTES = 128 * 1024
READ_CHUNK_BYTES = 64 * 1024
# How much of an error answer's body a message quotes (its reason, redacted).
ERROR_SNIPPET_BYTES = 300
# What decoders raise on bodies they cannot turn into values: bad JSON (orjson and
# msgspec errors are ValueErrors), nesting deeper than the C stack allows, numbers
# out of range, values of a type the decoder refuses.
DECODE_ERRORS = (ValueError, RecursionError, OverflowError, TypeError)

T = TypeVar("T")
Body = bytes | bytearray  # an answer as read: one growing buffer, never copied to decode


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    timeout_s: float = 60.0
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 30.0


@dataclass
class FetchStats:
    """Counters for one feed run; the fetcher increments them."""

    requests: int = 0
    retries: int = 0
    bytes: int = 0


class AnswerTooBig(FetchError):
    """The answer is larger than the request's cap; it would be as large next time."""


class BadAnswer(Exception):
    """Raised by a caller's `check` callback when a parsed answer is unusable."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Retryable(Exception):
    """One attempt failed in a way that asking again may fix."""

    def __init__(
        self, reason: str, retry_after_s: float | None = None, *, throttled: bool = False
    ) -> None:
        reason = " ".join(reason.split())  # error messages are one line
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.throttled = throttled


def _shown_url(url: str, params: Mapping[str, str] | None,
               data: Mapping[str, str] | None) -> str:
    """The request's URL as messages show it, its secrets registered and masked."""
    register_secret_params([*parse_qsl(urlsplit(url).query), *(params or {}).items(),
                            *(data or {}).items()])
    if params:
        url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"
    return redact(url)


def _one_line(text: str) -> str:
    return redact(" ".join(text.split()))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    Not a number (NaN) is no answer; an endless wait (1e308, inf) is kept as it
    is, and the caller refuses it.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def host_label(url: str) -> str:
    """A URL's host as metrics and messages name it: its netloc, lowercased, no userinfo."""
    return urlsplit(url).netloc.rpartition("@")[2].lower()


def status_label(status: int) -> str:
    """The `code` label of an answer: its status, bounded to the statuses HTTP defines."""
    return str(status) if 100 <= status <= 599 else "error"


@dataclass
class _Host:
    label: str  # `host` of the metrics
    limits: HostLimits
    bucket: TokenBucket
    slots: asyncio.Semaphore
    breaker: CircuitBreaker


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    params: Mapping[str, str] | None
    data: Mapping[str, str] | None
    retry: RetryPolicy
    stats: FetchStats
    shown_url: str  # redacted, for messages
    max_bytes: int
    host: _Host
    # A conditional GET's validators, and where its answer's status and validators go.
    headers: Mapping[str, str] | None = None
    answer: dict[str, str] | None = None


Interpret = Callable[[Body, str], Awaitable[T]]


class Fetcher:
    """Shared by every feed of a process, so that per-host limits really are per host."""

    def __init__(
        self,
        *,
        user_agent: str | None = None,
        max_response_bytes: int = 512 * 1024 * 1024,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        decode_executor: Executor | None = None,
    ) -> None:
        """`decode_executor` decodes the big JSON answers (None: the loop's default).

        The sync command passes its prepare pool, so that a run's CPU work shares
        two threads: on the default executor, a 100k first load had up to four
        more threads trading the GIL and ran 1-4% slower (interleaved pairs).
        """
        self.decode_executor = decode_executor
        self.user_agent = user_agent or (
            f"zoningsync/{__version__} (+https://github.com/zoningsync/zoningsync)"
        )
        self.max_response_bytes = max_response_bytes
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown_s = breaker_cooldown_s
        self._limits: dict[str, HostLimits] = {}
        self._hosts: dict[str, _Host] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def set_host_limits(self, host: str, limits: HostLimits) -> None:
        """Limit `host` (a URL netloc); set twice, the stricter of each limit wins.

        Call it before fetching: a tighter concurrency bound set later applies to
        new requests, while requests already in flight finish under the old one.
        """
        key = host.lower()
        previous = self._limits.get(key)
        effective = limits if previous is None else previous.stricter(limits)
        self._limits[key] = effective
        state = self._hosts.get(key)
        if state is not None:
            state.bucket.tighten(effective)
            if effective.max_concurrency < state.limits.max_concurrency:
                state.slots = asyncio.Semaphore(effective.max_concurrency)
            state.limits = effective

    def limits_for(self, host: str) -> HostLimits:
        return self._limits.get(host.lower(), DEFAULT_LIMITS)

    async def get_json(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        retry: RetryPolicy,
        stats: FetchStats,
        check: Callable[[Any], None] | None = None,
        decode: Callable[[Body], Any] = orjson.loads,
        max_bytes: int | None = None,
    ) -> Any:
        """GET a JSON answer; `decode` turns the body into values (orjson.loads).

        `max_bytes` caps this answer (None: the fetcher-wide limit, which also
        bounds any cap asked for).
        """
        return await self._fetch("GET", url, params, None, retry, stats, max_bytes,
                                 _json_reader(check, self.decode_executor, decode))

    async def post_json(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        retry: RetryPolicy,
        stats: FetchStats,
        check: Callable[[Any], None] | None = None,
        decode: Callable[[Body], Any] = orjson.loads,
        max_bytes: int | None = None,
    ) -> Any:
        """POST `data` form-encoded (ArcGIS takes long id lists only this way)."""
        return await self._fetch("POST", url, None, data, retry, stats, max_bytes,
                                 _json_reader(check, self.decode_executor, decode))

    async def get_bytes(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        retry: RetryPolicy,
        stats: FetchStats,
        max_bytes: int | None = None,
    ) -> bytes:
        return await self._fetch("GET", url, params, None, retry, stats, max_bytes, _raw_body)

    async def get_document(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        retry: RetryPolicy,
        stats: FetchStats,
        max_bytes: int | None = None,
    ) -> Document:
        """GET a page or a PDF conditionally: with the validators of the copy held.

        A 304 answer is a `Document` with `not_modified` and no body; the caller
        carries forward what it read from that copy.
        """
        headers = {k: v for k, v in (("If-None-Match", etag),
                                     ("If-Modified-Since", last_modified)) if v}
        answer: dict[str, str] = {}
        shown = _shown_url(url, None, None)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FetchError(f"{shown}: not an http(s) URL")
        limit = self.max_response_bytes if max_bytes is None else min(
            max_bytes, self.max_response_bytes)
        request = _Request("GET", url, None, None, retry, stats, shown, limit, self._host(url),
                           headers=headers or None, answer=answer)
        body, content_type = await self._retrying(request, _raw_with_type)
        not_modified = answer.get("status") == "304"
        return Document(
            url=url, body=b"" if not_modified else body, content_type=content_type or None,
            etag=answer.get("etag") or (etag if not_modified else None),
            last_modified=answer.get("last_modified") or (
                last_modified if not_modified else None),
            not_modified=not_modified)

    def _host(self, url: str) -> _Host:
        key = urlsplit(url).netloc.lower()
        state = self._hosts.get(key)
        if state is None:
            label = host_label(url)
            limits = self.limits_for(key)
            state = _Host(
                label=label,
                limits=limits,
                bucket=TokenBucket(limits),
                slots=asyncio.Semaphore(limits.max_concurrency),
                breaker=CircuitBreaker(
                    label, threshold=self.breaker_threshold, cooldown_s=self.breaker_cooldown_s
                ),
            )
            self._hosts[key] = state
            metrics.touch_host(label)
        return state

    async def _fetch(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        retry: RetryPolicy,
        stats: FetchStats,
        max_bytes: int | None,
        interpret: Interpret[T],
    ) -> T:
        shown = _shown_url(url, params, data)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FetchError(f"{shown}: not an http(s) URL")
        limit = self.max_response_bytes if max_bytes is None else min(
            max_bytes, self.max_response_bytes)
        request = _Request(method, url, params, data, retry, stats, shown, limit,
                           self._host(url))
        return await self._retrying(request, interpret)

    async def _retrying(self, request: _Request, interpret: Interpret[T]) -> T:
        """One request, retried while asking again may help; then one clear FetchError."""
        retry, shown = request.retry, request.shown_url
        attempts = retry.max_retries + 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=_backoff(retry),
            retry=retry_if_exception_type(_Retryable),
            before_sleep=_log_retry(request, attempts),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result = await self._attempt(request, interpret)
        except _Retryable as exc:
            raise FetchError(
                f"{shown}: no usable answer after {attempts} attempts; last: {redact(exc.reason)}"
            ) from None
        return result

    async def _attempt(self, request: _Request, interpret: Interpret[T]) -> T:
        host = request.host
        host.breaker.check()
        async with host.slots:
            waited = await host.bucket.acquire()
            if waited > 0.0:
                metrics.ratelimit_wait_seconds_total.labels(host.label).inc(waited)
            # Checked again: the host may have failed while this request queued.
            host.breaker.before_attempt()
            try:
                body, content_type = await self._exchange(request)
                value = await interpret(body, content_type)
            except _Retryable as exc:
                # A throttled host is alive and already slowed down by its bucket;
                # only real failures count towards opening the breaker.
                if exc.throttled:
                    host.breaker.record_neutral()
                else:
                    host.breaker.record_failure(exc.reason)
                raise
            except BadAnswer as exc:
                host.breaker.record_neutral()
                raise UpstreamRefused(
                    f"{request.shown_url}: HTTP 200 but unusable answer: {_one_line(str(exc))}"
                ) from None
            except ZoningsyncError as exc:
                host.breaker.record_neutral()
                raise _redacted(exc, request) from None
            except BaseException:
                host.breaker.record_neutral()
                raise
        host.breaker.record_success()
        return value

    async def _exchange(self, request: _Request) -> tuple[Body, str]:
        if self._session is None:
            raise RuntimeError("Fetcher used outside `async with Fetcher()`")
        request.stats.requests += 1
        answered = False
        try:
            async with self._session.request(
                request.method, request.url, params=request.params, data=request.data,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=request.retry.timeout_s),
            ) as response:
                answered = True
                _count_request(request, status_label(response.status))
                await self._judge_status(request, response)
                body = await self._read_body(request, response)
                if request.answer is not None:
                    request.answer.update({
                        "status": str(response.status),
                        "etag": response.headers.get("ETag", ""),
                        "last_modified": response.headers.get("Last-Modified", ""),
                    })
                return body, response.headers.get("Content-Type", "")
        except aiohttp.InvalidURL:
            raise FetchError(f"{request.shown_url}: not a valid URL") from None
        except TimeoutError:
            if not answered:
                _count_request(request, "timeout")
            raise _Retryable(f"no answer within {request.retry.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            if not answered:
                _count_request(request, "error")
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None

    async def _judge_status(self, request: _Request, response: aiohttp.ClientResponse) -> None:
        status = response.status
        if 200 <= status < 300 or (status == 304 and request.headers):
            return
        where = f"{request.shown_url}: HTTP {status}"
        if status in (429, 503):
            header = response.headers.get("Retry-After")
            retry_after = retry_after_seconds(header, datetime.now(UTC))
            throttled = status == 429 or retry_after is not None
            if throttled:
                # Even a server asking for forever pauses its host for at most the
                # longest wait zoningsync accepts: other feeds share the bucket.
                pause = min(retry_after or 0.0, MAX_RETRY_AFTER_S)
                request.host.bucket.slow_down(time.monotonic(), pause)
                log.warning(
                    "http.slow_down", host=request.host.label, status=status,
                    retry_after_s=retry_after,
                )
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                raise FetchError(
                    f"{where}: the server asks to wait {_seconds(retry_after)}, longer than "
                    f"zoningsync waits within a run ({MAX_RETRY_AFTER_S:.0f} s)"
                )
            raise _Retryable(f"HTTP {status}", retry_after, throttled=throttled)
        if status in RETRYABLE_STATUSES:
            raise _Retryable(f"HTTP {status}")
        said = await _error_snippet(response)
        if status in TOKEN_STATUSES:
            raise TokenRejected(f"{where}: the server rejected the access token{said}")
        raise UpstreamRefused(f"{where} {response.reason or ''}".rstrip() + said)

    async def _read_body(self, request: _Request, response: aiohttp.ClientResponse
                         ) -> bytearray:
        """Read at most the request's cap; a bigger answer would be as big next time.

        One growing buffer rather than chunks joined at the end: joining held
        the answer twice at its peak.
        """
        limit = request.max_bytes
        too_big = (f"{request.shown_url}: the answer is over the {limit}-byte limit "
                   f"({_mib(limit)}) for this kind of request")
        if response.content_length is not None and response.content_length > limit:
            raise AnswerTooBig(f"{too_big}; {response.content_length} bytes announced")
        body = bytearray()
        async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
            request.stats.bytes += len(chunk)
            if len(body) + len(chunk) > limit:
                raise AnswerTooBig(f"{too_big}; stopped reading there")
            body += chunk
        return body


def _count_request(request: _Request, code: str) -> None:
    """One request in `zoningsync_http_requests_total`: its status, or why none came."""
    metrics.http_requests_total.labels(request.host.label, code).inc()


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 1e9 else f"{value:.3g} s"


def _mib(size: int) -> str:
    return f"{size / 2**20:.4g} MiB"


async def _error_snippet(response: aiohttp.ClientResponse) -> str:
    """The start of an error answer's body, one line, redacted: often the server's reason."""
    try:
        text = (await response.content.read(ERROR_SNIPPET_BYTES)).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError):
        return ""
    text = _one_line(text)
    return f": {text}" if text else ""


def _redacted(error: ZoningsyncError, request: _Request) -> ZoningsyncError:
    """A caller's error (a token refused in an answer) as the same kind, said safely."""
    message = _one_line(error.message)
    if not message.startswith(request.shown_url):
        message = f"{request.shown_url}: {message}"
    redacted = type(error)(message)
    redacted.exit_code = error.exit_code
    return redacted


def _json_reader(check: Callable[[Any], None] | None, executor: Executor | None,
                 decode: Callable[[Body], Any]) -> Interpret[Any]:
    """Reads answers with `decode`; whatever it raises on a body it cannot read
    (`DECODE_ERRORS`) makes the answer a bad one, retried like a truncated body.
    """
    async def read(body: Body, content_type: str) -> Any:
        if "html" in content_type.lower() or body[:64].lstrip().startswith(b"<"):
            raise _Retryable(f"an HTML page instead of JSON ({content_type or 'no content type'})")
        try:
            if len(body) > THREAD_PARSE_BYTES:
                value = await asyncio.get_running_loop().run_in_executor(
                    executor, decode, body)
            else:
                value = decode(body)
        except DECODE_ERRORS as exc:
            kind = "invalid JSON" if isinstance(exc, ValueError) else "undecodable JSON"
            raise _Retryable(f"{kind} ({type(exc).__name__}: {str(exc)[:200]})") from None
        except MemoryError:
            raise FetchError(f"decoding a {len(body)}-byte answer ran out of memory") from None
        if check is not None:
            try:
                check(value)
            except BadAnswer as exc:
                if exc.retryable:
                    raise _Retryable(f"unusable answer: {exc}") from None
                raise
        return value

    return read


async def _raw_body(body: Body, content_type: str) -> bytes:
    return bytes(body)


async def _raw_with_type(body: Body, content_type: str) -> tuple[bytes, str]:
    return bytes(body), content_type


@dataclass(frozen=True)
class Document:
    """A conditional GET's answer: the body, or `not_modified` with the validators held."""

    url: str
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool


def _backoff(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Full-jitter exponential backoff, but never sooner than the server asked."""
    jitter = wait_random_exponential(multiplier=policy.backoff_initial_s, max=policy.backoff_max_s)

    def wait(state: RetryCallState) -> float:
        delay = jitter(state)
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Retryable) and failure.retry_after_s is not None:
            delay = max(delay, failure.retry_after_s)
        return delay

    return wait


def _log_retry(request: _Request, attempts: int) -> Callable[[RetryCallState], None]:
    def log_retry(state: RetryCallState) -> None:
        request.stats.retries += 1
        metrics.http_retries_total.labels(request.host.label).inc()
        failure = state.outcome.exception() if state.outcome is not None else None
        reason = failure.reason if isinstance(failure, _Retryable) else repr(failure)
        log.warning(
            "http.retry",
            url=request.shown_url,
            attempt=state.attempt_number,
            attempts=attempts,
            reason=redact(reason),
            wait_s=round(state.upcoming_sleep, 3),
        )

    return log_retry
