"""Per-host token bucket that keeps zoningsync polite to county servers.

Every request to a host, from every feed, retries included, takes one token. The
bucket starts full (`burst` tokens) and refills at `requests_per_second`, so in
any window of `t` seconds a host sees at most `burst + rate * t` requests.

A throttle answer (429, or 503 with Retry-After) blocks the bucket until the
server said to come back, empties it (no burst right after a block) and halves
the rate; the rate then recovers by doubling every `RECOVERY_DOUBLING_S` without
a new throttle answer. The maths is in `take(now)`, which takes the time as an
argument so that tests can drive it with a table of instants.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# A throttled host's rate doubles back every this many seconds (one halving
# recovers within a minute, as the design asks).
RECOVERY_DOUBLING_S = 60.0
# Throttle answers this close to the previous one are the same episode (requests
# that were already in flight), so they do not halve the rate again.
SLOWDOWN_EPISODE_S = 1.0
# Never slow a host below this fraction of its configured rate.
MIN_SLOWDOWN = 1.0 / 16.0


@dataclass(frozen=True)
class HostLimits:
    requests_per_second: float
    burst: int
    max_concurrency: int = 4

    def stricter(self, other: HostLimits) -> HostLimits:
        """Feeds on one host share one bucket, so the most cautious feed wins."""
        return HostLimits(
            requests_per_second=min(self.requests_per_second, other.requests_per_second),
            burst=min(self.burst, other.burst),
            max_concurrency=min(self.max_concurrency, other.max_concurrency),
        )


DEFAULT_LIMITS = HostLimits(requests_per_second=2.0, burst=4)


class TokenBucket:
    """Grants one token per request; `acquire` waits (FIFO) until one is available."""

    def __init__(
        self, limits: HostLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.rate = limits.requests_per_second
        self.burst = limits.burst
        self._tokens = float(limits.burst)
        self._updated = clock()
        self._blocked_until = float("-inf")
        self._slowdown = 1.0
        self._slowed_at = float("-inf")
        self._lock = asyncio.Lock()

    def tighten(self, limits: HostLimits) -> None:
        self.rate = min(self.rate, limits.requests_per_second)
        self.burst = min(self.burst, limits.burst)
        self._tokens = min(self._tokens, float(self.burst))

    def current_rate(self, now: float) -> float:
        """The configured rate times what is left of the last slowdown."""
        recovered = math.exp2(max(0.0, now - self._slowed_at) / RECOVERY_DOUBLING_S)
        return self.rate * min(1.0, self._slowdown * recovered)

    def take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait before asking again."""
        if now < self._blocked_until:
            return self._blocked_until - now
        rate = self.current_rate(now)
        if now > self._updated:
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * rate)
            self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate

    def slow_down(self, now: float, retry_after_s: float) -> None:
        """Grant nothing for `retry_after_s`, then restart empty at a halved rate."""
        until = now + max(0.0, retry_after_s)
        self._blocked_until = max(self._blocked_until, until)
        self._tokens = 0.0
        self._updated = max(self._updated, self._blocked_until)
        if now >= self._slowed_at + SLOWDOWN_EPISODE_S:
            factor = self.current_rate(now) / self.rate
            self._slowdown = max(MIN_SLOWDOWN, factor / 2.0)
            self._slowed_at = self._blocked_until

    async def acquire(self) -> float:
        """Take a token; return the seconds waited for it (queued behind others included).

        The caller reports the wait (`zoningsync_ratelimit_wait_seconds_total`),
        so that an operator sees a host held back by its own politeness.
        """
        # The lock queues waiters in arrival order; the loop re-reads the clock
        # because a slowdown may arrive while a waiter sleeps.
        asked = self._clock()
        queued = self._lock.locked()  # behind a waiter: waiting too
        async with self._lock:
            while True:
                now = self._clock()
                delay = self.take(now)
                if delay <= 0.0:
                    return now - asked if queued else 0.0
                queued = True
                await asyncio.sleep(delay)
