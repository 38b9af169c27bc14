"""Schedule maths: when a feed is next due, given its schedule, runs and `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zoningsync.config import Schedule, parse_schedule
from zoningsync.daemon.schedule import backoff_of, jitter_of, next_due

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_JITTER = 0


def sched(text: str, jitter_s: int | None = NO_JITTER) -> Schedule:
    from dataclasses import replace

    return replace(parse_schedule(text), jitter_s=jitter_s)


@pytest.mark.parametrize(("text", "last_success", "expected"), [
    ("every 30s", T0, T0 + timedelta(seconds=30)),
    ("every 15m", T0, T0 + timedelta(minutes=15)),
    ("every 6h", T0, T0 + timedelta(hours=6)),
    ("every 1d", T0, T0 + timedelta(days=1)),
    ("0 3 * * *", T0, datetime(2026, 3, 2, 3, 0, tzinfo=UTC)),
    ("*/10 * * * *", T0 + timedelta(minutes=1), T0 + timedelta(minutes=10)),
    ("0 0 1 * *", T0, datetime(2026, 4, 1, 0, 0, tzinfo=UTC)),
    ("30 8 * * 1", T0, datetime(2026, 3, 2, 8, 30, tzinfo=UTC)),  # 2026-03-01 is a Sunday
])
def test_a_feed_that_succeeded_is_due_at_its_schedules_next_time(
        text: str, last_success: datetime, expected: datetime) -> None:
    assert next_due("j/f", sched(text), last_success=last_success, last_attempt=last_success,
                    failures=0, now=last_success + timedelta(seconds=1)) == expected


@pytest.mark.parametrize("text", ["every 30s", "every 6h", "0 3 * * *"])
def test_a_feed_that_never_succeeded_is_due_at_once(text: str) -> None:
    assert next_due("j/f", sched(text, None), last_success=None, last_attempt=None,
                    failures=0, now=T0) == T0


@pytest.mark.parametrize(("failures", "expected_s"), [
    (1, 15), (2, 30), (3, 60), (4, 120), (5, 240), (8, 1920), (9, 3600), (40, 3600),
])
def test_failures_back_off_exponentially_capped_at_the_interval(failures: int,
                                                                expected_s: int) -> None:
    due = next_due("j/f", sched("every 1h"), last_success=T0 - timedelta(days=1),
                   last_attempt=T0, failures=failures, now=T0)
    assert due == T0 + timedelta(seconds=expected_s)


@pytest.mark.parametrize(("text", "failures", "expected_s"), [
    ("every 30s", 1, 15), ("every 30s", 2, 30), ("every 30s", 6, 30),
    ("0 * * * *", 20, 3600),
])
def test_back_off_never_exceeds_the_schedules_own_period(text: str, failures: int,
                                                         expected_s: int) -> None:
    assert backoff_of(sched(text), failures, T0) == timedelta(seconds=expected_s)


def test_a_feed_that_never_succeeded_and_failed_still_backs_off() -> None:
    assert next_due("j/f", sched("every 6h"), last_success=None, last_attempt=T0,
                    failures=1, now=T0) == T0 + timedelta(seconds=15)


@pytest.mark.parametrize("feed", [f"county-{i}/parcels" for i in range(20)])
def test_default_jitter_lies_within_ten_percent_of_the_interval(feed: str) -> None:
    jitter = jitter_of(feed, sched("every 6h", None), T0)
    assert timedelta(0) <= jitter < timedelta(hours=6) * 0.1


def test_jitter_is_the_same_for_a_feed_wherever_it_is_computed() -> None:
    schedule = sched("every 6h", None)
    later = T0 + timedelta(days=3)
    assert jitter_of("a/parcels", schedule, T0) == jitter_of("a/parcels", schedule, later)
    spread = {jitter_of(f"c{i}/p", schedule, T0) for i in range(20)}
    assert len(spread) == 20  # feeds are spread, not herded


@pytest.mark.parametrize(("text", "jitter_s", "bound"), [
    ("every 6h", 0, timedelta(0)),
    ("every 6h", 300, timedelta(seconds=300)),
    ("0 3 * * *", None, timedelta(days=1) * 0.1),
])
def test_jitter_is_bounded_by_its_setting(text: str, jitter_s: int | None,
                                          bound: timedelta) -> None:
    due = next_due("j/f", sched(text, jitter_s), last_success=T0, last_attempt=T0,
                   failures=0, now=T0)
    plain = next_due("j/f", sched(text, 0), last_success=T0, last_attempt=T0,
                     failures=0, now=T0)
    assert plain <= due <= plain + bound


def test_every_30s_is_an_accepted_schedule() -> None:
    assert parse_schedule("every 30s").interval_s == 30
