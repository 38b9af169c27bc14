"""The circuit breaker's states, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from zoningsync.breaker import CircuitBreaker
from zoningsync.errors import CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, threshold: int = 3, cooldown_s: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker(
        "gis.example.org", threshold=threshold, cooldown_s=cooldown_s, clock=clock
    )


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        b.before_attempt()
        b.record_failure()


def test_breaker_stays_closed_below_the_threshold() -> None:
    b = breaker(Clock())
    fail(b, 2)
    b.before_attempt()
    assert not b.is_open


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    b = breaker(Clock())
    fail(b, 3)
    with pytest.raises(CircuitOpen, match=r"gis\.example\.org: 3 consecutive failed"):
        b.before_attempt()


def test_refusal_says_when_the_host_will_be_tried_again() -> None:
    clock = Clock()
    b = breaker(clock, cooldown_s=30.0)
    fail(b, 3)
    clock.now += 10.0
    with pytest.raises(CircuitOpen, match=r"again \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 20 s\)"):
        b.before_attempt()


def test_a_success_resets_the_consecutive_failure_count() -> None:
    b = breaker(Clock())
    fail(b, 2)
    b.record_success()
    fail(b, 2)
    b.before_attempt()
    assert not b.is_open


def test_neutral_answers_neither_count_nor_reset() -> None:
    b = breaker(Clock())
    fail(b, 2)
    b.before_attempt()
    b.record_neutral()
    fail(b, 1)
    assert b.is_open


def test_after_the_cooldown_exactly_one_trial_goes_through() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 30.0
    b.before_attempt()
    with pytest.raises(CircuitOpen, match="trial request in flight"):
        b.before_attempt()


def test_a_successful_trial_closes_the_breaker() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 30.0
    b.before_attempt()
    b.record_success()
    assert not b.is_open
    b.before_attempt()
    b.before_attempt()


def test_a_failed_trial_opens_the_breaker_for_another_cooldown() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 30.0
    fail(b, 1)
    clock.now += 29.0
    with pytest.raises(CircuitOpen):
        b.before_attempt()
    clock.now += 1.0
    b.before_attempt()


def test_an_abandoned_trial_hands_the_slot_to_the_next_caller() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 30.0
    b.before_attempt()
    b.record_neutral()
    b.before_attempt()


def test_check_refuses_while_open_but_never_claims_the_trial() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    with pytest.raises(CircuitOpen):
        b.check()
    clock.now += 30.0
    b.check()
    b.check()
    b.before_attempt()
    with pytest.raises(CircuitOpen):
        b.check()


def fail_with(b: CircuitBreaker, *reasons: str) -> None:
    for reason in reasons:
        b.before_attempt()
        b.record_failure(reason)


def test_the_refusal_names_the_last_three_distinct_reasons_oldest_first() -> None:
    b = breaker(Clock(), threshold=5)
    fail_with(b, "HTTP 500", "HTTP 502", "HTTP 502", "no answer within 60 s", "HTTP 504")
    with pytest.raises(CircuitOpen) as refused:
        b.before_attempt()
    assert ("5 consecutive failed requests (last: HTTP 502; no answer within 60 s; HTTP 504)"
            in refused.value.message)


def test_the_reasons_a_breaker_names_are_redacted() -> None:
    b = breaker(Clock(), threshold=1)
    fail_with(b, "ClientError: https://gis.example.org/q?token=abcdef123456 reset")
    with pytest.raises(CircuitOpen) as refused:
        b.before_attempt()
    assert "abcdef123456" not in refused.value.message
    assert "token=***" in refused.value.message


def test_a_success_forgets_the_reasons_of_earlier_failures() -> None:
    b = breaker(Clock())
    fail_with(b, "HTTP 500", "HTTP 500")
    b.record_success()
    fail_with(b, "HTTP 503", "HTTP 503", "HTTP 503")
    assert b.reasons == ["HTTP 503"]
