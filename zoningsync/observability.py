"""Logs and the event-loop lag probe.

Logs go to stderr only, as JSON lines when stderr is not a terminal (journald,
CI, pipes) and as readable lines on a terminal; stdout is left to each command's
answer. Every string of every event, from structlog or the stdlib logging of a
library, passes `redact.redact()` just before it is rendered (tracebacks
included), so no log call can leak a secret it was handed. The loop-lag probe
measures how late the event loop wakes up, which is how zoningsync proves that
CPU work really stays off the loop: every sample goes to the
`zoningsync_event_loop_lag_seconds` histogram, and the health check reads the
latest ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from zoningsync.metrics import event_loop_lag_seconds
from zoningsync.redact import redact

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


# How deep redaction looks into an event's lists and mappings; deeper values are
# replaced by their redacted text.
REDACT_DEPTH = 4


def redact_event(logger: Any, method: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
    """structlog processor: every value of the event with its secrets masked.

    Strings are redacted, inside lists and mappings too; any other object (a URL,
    an exception) becomes its redacted text, since the renderer would print that
    text anyway. structlog's own keys (`_record`) are left for it to remove.
    """
    for key, value in event.items():
        if not key.startswith("_"):
            event[key] = _redacted(value, REDACT_DEPTH)
    return event


def _redacted(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float):
        return value
    if depth > 0 and isinstance(value, dict):
        return {k: _redacted(v, depth - 1) for k, v in value.items()}
    if depth > 0 and isinstance(value, list | tuple):
        return [_redacted(v, depth - 1) for v in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return redact(str(value))


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Route structlog and stdlib logging to stderr in one format."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Exceptions are rendered to text first, so that redaction sees the text.
    last: list[structlog.typing.Processor] = [structlog.processors.format_exc_info,
                                              redact_event]
    structlog.configure(
        processors=[*shared, *last, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[*shared, *last],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(LEVELS[level], logging.WARNING))


# Samples a probe keeps for its percentiles: an hour at the default interval, so
# a daemon's probe holds bounded memory however long it runs.
SAMPLES_KEPT = 72_000


@dataclass
class LoopLagProbe:
    """Samples how late `asyncio.sleep(interval)` wakes up, while running."""

    interval_s: float = 0.05
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Sample until cancelled (a supervised task of the daemon, or `start()`'s)."""
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.record(max(0.0, time.perf_counter() - start - self.interval_s))

    def record(self, lag_s: float) -> None:
        """One sample: kept for the percentiles, observed by the histogram."""
        self.samples.append(lag_s)
        event_loop_lag_seconds.observe(lag_s)

    def recent(self, count: int = 10) -> float:
        """The worst of the last `count` samples (about half a second): the loop's lag now.

        0 before any sample. A stall shows once the loop wakes from it: nothing,
        a health check included, runs on a blocked loop, and the probe's first
        sample after it is the stall.
        """
        if not self.samples:
            return 0.0
        return max(self.samples[i] for i in range(-min(count, len(self.samples)), 0))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) of observed lag in seconds; 0 before any sample."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index]
