"""The token bucket's maths, driven by explicit instants instead of the wall clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from zoningsync.ratelimit import MIN_SLOWDOWN, RECOVERY_DOUBLING_S, HostLimits, TokenBucket

T0 = 1000.0


def bucket(rate: float = 2.0, burst: int = 4) -> TokenBucket:
    return TokenBucket(HostLimits(requests_per_second=rate, burst=burst), clock=lambda: T0)


def grants(b: TokenBucket, now: float, count: int) -> int:
    return sum(b.take(now) == 0.0 for _ in range(count))


def test_a_fresh_bucket_grants_its_burst_at_once() -> None:
    b = bucket(rate=2.0, burst=4)
    assert grants(b, T0, 10) == 4


def test_an_empty_bucket_says_how_long_until_the_next_token() -> None:
    b = bucket(rate=2.0, burst=4)
    grants(b, T0, 4)
    assert b.take(T0) == pytest.approx(0.5)


def test_tokens_refill_at_the_configured_rate() -> None:
    b = bucket(rate=2.0, burst=4)
    grants(b, T0, 4)
    assert grants(b, T0 + 1.0, 10) == 2


def test_an_idle_bucket_never_holds_more_than_its_burst() -> None:
    b = bucket(rate=2.0, burst=4)
    grants(b, T0, 4)
    assert grants(b, T0 + 3600.0, 10) == 4


def test_slow_down_grants_nothing_until_retry_after_has_passed() -> None:
    b = bucket(rate=2.0, burst=4)
    b.slow_down(T0, 5.0)
    assert b.take(T0 + 1.0) == pytest.approx(4.0)
    assert b.take(T0 + 4.9) > 0.0


def test_after_a_slow_down_the_bucket_restarts_empty_at_half_rate() -> None:
    b = bucket(rate=2.0, burst=4)
    b.slow_down(T0, 5.0)
    assert b.current_rate(T0 + 5.0) == pytest.approx(1.0)
    assert b.take(T0 + 5.0) == pytest.approx(1.0)
    assert grants(b, T0 + 6.0, 10) == 1


def test_the_rate_recovers_to_the_configured_rate_within_a_minute() -> None:
    b = bucket(rate=2.0, burst=4)
    b.slow_down(T0, 0.0)
    assert b.current_rate(T0 + RECOVERY_DOUBLING_S / 2) == pytest.approx(2.0 / 2**0.5)
    assert b.current_rate(T0 + RECOVERY_DOUBLING_S) == pytest.approx(2.0)
    assert b.current_rate(T0 + 10 * RECOVERY_DOUBLING_S) == pytest.approx(2.0)


def test_throttle_answers_of_one_episode_halve_the_rate_once() -> None:
    b = bucket(rate=8.0, burst=4)
    b.slow_down(T0, 0.0)
    b.slow_down(T0 + 0.1, 0.0)
    assert b.current_rate(T0 + 0.1) == pytest.approx(4.0, rel=0.01)


def test_repeated_throttle_episodes_keep_halving_down_to_a_floor() -> None:
    b = bucket(rate=8.0, burst=4)
    for episode in range(10):
        b.slow_down(T0 + 2.0 * episode, 0.0)
    assert b.current_rate(T0 + 18.0) == pytest.approx(8.0 * MIN_SLOWDOWN)


def test_tighten_keeps_the_stricter_rate_and_burst() -> None:
    b = bucket(rate=10.0, burst=10)
    b.tighten(HostLimits(requests_per_second=20.0, burst=3))
    assert (b.rate, b.burst) == (10.0, 3)
    assert grants(b, T0, 10) == 3


def test_host_limits_stricter_takes_the_minimum_of_each_limit() -> None:
    a = HostLimits(requests_per_second=5.0, burst=2, max_concurrency=8)
    b = HostLimits(requests_per_second=1.0, burst=6, max_concurrency=2)
    assert a.stricter(b) == HostLimits(requests_per_second=1.0, burst=2, max_concurrency=2)


async def test_acquire_waits_for_tokens_on_the_real_clock() -> None:
    b = TokenBucket(HostLimits(requests_per_second=20.0, burst=2))
    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(b.acquire() for _ in range(6))), timeout=5.0)
    assert time.monotonic() - start >= 4 / 20.0 - 0.01
