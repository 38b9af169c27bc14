"""Per-host circuit breaker: stop hammering a host that keeps failing.

After `threshold` consecutive failed attempts the breaker opens and every call
fails at once with `CircuitOpen` for `cooldown_s`. Then exactly one trial attempt
is let through (half-open): a success closes the breaker, a failure opens it for
another cooldown. Outcomes that say nothing about the host's health (a 404, an
unusable record, a cancelled request, a 429 that the token bucket already
answers by slowing down) neither count nor reset; they only hand the trial slot
to the next caller.

The refusal names the last few distinct reasons the host failed for (redacted),
so that a failed run says why the host was given up on, not only how often.
`zoningsync_breaker_open{host}` is 1 from the opening to the success that closes
it (half-open included: the host has not proven itself yet), set only on those
transitions.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from zoningsync.errors import CircuitOpen
from zoningsync.metrics import breaker_open
from zoningsync.redact import redact

log = structlog.get_logger(__name__)

REASONS_KEPT = 3


class CircuitBreaker:
    def __init__(
        self,
        host: str,
        *,
        threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._trial_in_flight = False
        self._reasons: deque[str] = deque(maxlen=REASONS_KEPT)  # distinct, newest last
        breaker_open.labels(host).set(0)  # a new breaker is closed, whatever an old one was

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def check(self) -> None:
        """Raise `CircuitOpen` if an attempt now would be refused (claims nothing)."""
        if self._open_until is None:
            return
        now = self._clock()
        if now < self._open_until or self._trial_in_flight:
            raise CircuitOpen(self._refusal(self._open_until - now))

    def before_attempt(self) -> None:
        """Raise `CircuitOpen` unless this attempt may go; when half-open it is the trial."""
        self.check()
        if self._open_until is not None:
            self._trial_in_flight = True

    @property
    def reasons(self) -> list[str]:
        """The last distinct reasons of the current run of failures, oldest first."""
        return list(self._reasons)

    def record_success(self) -> None:
        if self._open_until is not None:
            breaker_open.labels(self.host).set(0)
        self._failures = 0
        self._open_until = None
        self._trial_in_flight = False
        self._reasons.clear()

    def record_failure(self, reason: str = "") -> None:
        """Count a failed attempt; `reason` says why, in one line (it is redacted here)."""
        self._failures += 1
        if reason:
            reason = redact(" ".join(reason.split()))
            if reason in self._reasons:
                self._reasons.remove(reason)
            self._reasons.append(reason)
        if self._trial_in_flight or self._failures >= self.threshold:
            self._open_until = self._clock() + self.cooldown_s
            self._trial_in_flight = False
            breaker_open.labels(self.host).set(1)
            log.warning(
                "http.circuit_open",
                host=self.host,
                consecutive_failures=self._failures,
                cooldown_s=self.cooldown_s,
                reasons=self.reasons,
            )

    def record_neutral(self) -> None:
        self._trial_in_flight = False

    def _refusal(self, remaining_s: float) -> str:
        wait = max(0.0, remaining_s)
        at = datetime.now(UTC) + timedelta(seconds=wait)
        when = f"{at:%Y-%m-%d %H:%M:%S} UTC (in {wait:.0f} s)"
        if self._trial_in_flight:
            when = "when the trial request in flight succeeds"
        causes = f" (last: {'; '.join(self._reasons)})" if self._reasons else ""
        return (
            f"{self.host}: {self._failures} consecutive failed requests{causes}; "
            f"zoningsync will try this host again {when}"
        )
