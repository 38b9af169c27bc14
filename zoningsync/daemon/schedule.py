"""When a feed is next due: pure schedule maths, with the time as a parameter.

Every daemon computes the same answer for the same feed (the jitter is derived
from the feed's id, never drawn at random), so it does not matter which one
writes a schedule row. A feed that never succeeded is due at once; a failing
feed backs off exponentially, never longer than its own interval; a run that
was cancelled (a shutdown, a pause) or refused its lease is not a failure.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from croniter import croniter

from zoningsync.config import Schedule

DEFAULT_JITTER_FRACTION = 0.10
BACKOFF_BASE_S = 15.0


def interval_of(schedule: Schedule, at: datetime) -> float:
    """The schedule's period in seconds: fixed, or the gap between the cron's next two ticks."""
    if schedule.interval_s is not None:
        return float(schedule.interval_s)
    ticks = croniter(schedule.text, at)
    first: datetime = ticks.get_next(datetime)
    second: datetime = ticks.get_next(datetime)
    return (second - first).total_seconds()


def jitter_of(feed_id: str, schedule: Schedule, at: datetime) -> timedelta:
    """This feed's fixed share of its jitter window (so daemons agree on it)."""
    window = (schedule.jitter_s if schedule.jitter_s is not None
              else DEFAULT_JITTER_FRACTION * interval_of(schedule, at))
    digest = hashlib.sha256(feed_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=fraction * window)


def backoff_of(schedule: Schedule, failures: int, at: datetime) -> timedelta:
    """15 s, 30 s, 60 s, ... after consecutive failures, capped at the interval."""
    exponent = min(max(failures - 1, 0), 40)
    return timedelta(seconds=min(BACKOFF_BASE_S * 2**exponent, interval_of(schedule, at)))


def next_due(feed_id: str, schedule: Schedule, *, last_success: datetime | None,
             last_attempt: datetime | None, failures: int, now: datetime) -> datetime:
    """When the feed is next due, given how its runs went; never before `now` is asked for.

    A failing feed is due its back-off after the failed attempt; a feed that never
    succeeded is due `now`; otherwise its schedule's next time after its last
    success, plus the feed's jitter.
    """
    if failures > 0 and last_attempt is not None:
        return last_attempt + backoff_of(schedule, failures, last_attempt)
    if last_success is None:
        return now
    if schedule.interval_s is not None:
        base = last_success + timedelta(seconds=schedule.interval_s)
    else:
        base = croniter(schedule.text, last_success).get_next(datetime)
    return base + jitter_of(feed_id, schedule, last_success)
