"""The one HTTP fetcher every producer uses.

County servers are slow, flaky and shared by many feeds, so every request goes
through the same per-host machinery: a token bucket (`ratelimit.py`) that all
feeds on a host share, a concurrency bound, retries with full-jitter backoff for
answers that asking again may fix, Retry-After honoured for the whole host, and
a circuit breaker (`breaker.py`) that stops hammering a host that keeps failing.

An answer is only "good" when the caller can use it: JSON endpoints often answer
HTTP 200 with an HTML firewall page, a truncated body or a JSON error, so those
are retried too, and the caller's `check` callback can ask for a retry by
raising `BadAnswer`. A query or form parameter named `token` never reaches a log
line or an error message.
"""

from __future__ import annotations

import asyncio
import re
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

from zoningsync import __version__
from zoningsync.breaker import CircuitBreaker
from zoningsync.errors import FetchError, TokenRejected, UpstreamRefused
from zoningsync.ratelimit import DEFAULT_LIMITS, HostLimits, TokenBucket

__all__ = ["BadAnswer", "FetchStats", "Fetcher", "HostLimits", "RetryPolicy", "retry_after_seconds"]

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
SECRET_PARAMS = frozenset({"token"})
_SECRET_IN_TEXT = re.compile(r"(?i)\b(token=)[^&\s#'\"]+")

T = TypeVar("T")


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


class _Redactor:
    """Hides access tokens from anything a human will read."""

    def __init__(
        self, url: str, params: Mapping[str, str] | None, data: Mapping[str, str] | None
    ) -> None:
        pairs = [*parse_qsl(urlsplit(url).query), *(params or {}).items(), *(data or {}).items()]
        self._secrets = [value for name, value in pairs if name.lower() in SECRET_PARAMS and value]
        if params:
            url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"
        self.url = self(url)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SECRET_IN_TEXT.sub(r"\1***", text)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass
class _Host:
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
    redact: _Redactor
    host: _Host


Interpret = Callable[[bytes, str], Awaitable[T]]


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
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """GET a JSON answer; `decode` turns the body into values (orjson.loads)."""
        return await self._fetch("GET", url, params, None, retry, stats,
                                 _json_reader(check, self.decode_executor, decode))

    async def post_json(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        retry: RetryPolicy,
        stats: FetchStats,
        check: Callable[[Any], None] | None = None,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """POST `data` form-encoded (ArcGIS takes long id lists only this way)."""
        return await self._fetch("POST", url, None, data, retry, stats,
                                 _json_reader(check, self.decode_executor, decode))

    async def get_bytes(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        retry: RetryPolicy,
        stats: FetchStats,
    ) -> bytes:
        return await self._fetch("GET", url, params, None, retry, stats, _raw_body)

    def _host(self, url: str) -> _Host:
        key = urlsplit(url).netloc.lower()
        state = self._hosts.get(key)
        if state is None:
            limits = self.limits_for(key)
            state = _Host(
                limits=limits,
                bucket=TokenBucket(limits),
                slots=asyncio.Semaphore(limits.max_concurrency),
                breaker=CircuitBreaker(
                    key, threshold=self.breaker_threshold, cooldown_s=self.breaker_cooldown_s
                ),
            )
            self._hosts[key] = state
        return state

    async def _fetch(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        retry: RetryPolicy,
        stats: FetchStats,
        interpret: Interpret[T],
    ) -> T:
        redact = _Redactor(url, params, data)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FetchError(f"{redact.url}: not an http(s) URL")
        request = _Request(method, url, params, data, retry, stats, redact, self._host(url))
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
                f"{redact.url}: no usable answer after {attempts} attempts; "
                f"last: {redact(exc.reason)}"
            ) from None
        return result

    async def _attempt(self, request: _Request, interpret: Interpret[T]) -> T:
        host = request.host
        host.breaker.check()
        async with host.slots:
            await host.bucket.acquire()
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
                    host.breaker.record_failure()
                raise
            except BadAnswer as exc:
                host.breaker.record_neutral()
                raise UpstreamRefused(
                    request.redact(f"{request.redact.url}: HTTP 200 but unusable answer: {exc}")
                ) from None
            except BaseException:
                host.breaker.record_neutral()
                raise
        host.breaker.record_success()
        return value

    async def _exchange(self, request: _Request) -> tuple[bytes, str]:
        if self._session is None:
            raise RuntimeError("Fetcher used outside `async with Fetcher()`")
        request.stats.requests += 1
        try:
            async with self._session.request(
                request.method, request.url, params=request.params, data=request.data,
                timeout=aiohttp.ClientTimeout(total=request.retry.timeout_s),
            ) as response:
                self._judge_status(request, response)
                body = await self._read_body(request, response)
                return body, response.headers.get("Content-Type", "")
        except aiohttp.InvalidURL:
            raise FetchError(f"{request.redact.url}: not a valid URL") from None
        except TimeoutError:
            raise _Retryable(f"no answer within {request.retry.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None

    def _judge_status(self, request: _Request, response: aiohttp.ClientResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        where = f"{request.redact.url}: HTTP {status}"
        if status in (429, 503):
            header = response.headers.get("Retry-After")
            retry_after = retry_after_seconds(header, datetime.now(UTC))
            throttled = status == 429 or retry_after is not None
            if throttled:
                request.host.bucket.slow_down(time.monotonic(), retry_after or 0.0)
                log.warning(
                    "http.slow_down", host=request.host.breaker.host, status=status,
                    retry_after_s=retry_after,
                )
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                raise FetchError(
                    f"{where}: the server asks to wait {retry_after:.0f} s, longer than "
                    f"zoningsync waits within a run ({MAX_RETRY_AFTER_S:.0f} s)"
                )
            raise _Retryable(f"HTTP {status}", retry_after, throttled=throttled)
        if status in RETRYABLE_STATUSES:
            raise _Retryable(f"HTTP {status}")
        if status in TOKEN_STATUSES:
            raise TokenRejected(f"{where}: the server rejected the access token")
        raise UpstreamRefused(f"{where} {response.reason or ''}".rstrip())

    async def _read_body(self, request: _Request, response: aiohttp.ClientResponse) -> bytes:
        """Read at most `max_response_bytes`; a bigger answer would be as big next time."""
        limit = self.max_response_bytes
        too_big = f"{request.redact.url}: answer is over the {limit}-byte limit"
        if response.content_length is not None and response.content_length > limit:
            raise FetchError(f"{too_big} ({response.content_length} bytes announced)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
            size += len(chunk)
            request.stats.bytes += len(chunk)
            if size > limit:
                raise FetchError(too_big)
            chunks.append(chunk)
        return b"".join(chunks)


def _json_reader(check: Callable[[Any], None] | None, executor: Executor | None,
                 decode: Callable[[bytes], Any]) -> Interpret[Any]:
    """Reads answers with `decode`, which raises orjson.JSONDecodeError on bad JSON."""
    async def read(body: bytes, content_type: str) -> Any:
        if "html" in content_type.lower() or body[:64].lstrip().startswith(b"<"):
            raise _Retryable(f"an HTML page instead of JSON ({content_type or 'no content type'})")
        try:
            if len(body) > THREAD_PARSE_BYTES:
                value = await asyncio.get_running_loop().run_in_executor(
                    executor, decode, body)
            else:
                value = decode(body)
        except orjson.JSONDecodeError as exc:
            raise _Retryable(f"invalid JSON ({exc})") from None
        if check is not None:
            try:
                check(value)
            except BadAnswer as exc:
                if exc.retryable:
                    raise _Retryable(f"unusable answer: {exc}") from None
                raise
        return value

    return read


async def _raw_body(body: bytes, content_type: str) -> bytes:
    return body


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
        failure = state.outcome.exception() if state.outcome is not None else None
        reason = failure.reason if isinstance(failure, _Retryable) else repr(failure)
        log.warning(
            "http.retry",
            url=request.redact.url,
            attempt=state.attempt_number,
            attempts=attempts,
            reason=request.redact(reason),
            wait_s=round(state.upcoming_sleep, 3),
        )

    return log_retry
