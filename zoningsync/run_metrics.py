"""A run attempt's edges, told to Prometheus: started, then ended with its outcome.

`RunObserver.start` is called once the run's row exists (a paused or busy feed
is no run) and `end` once it is closed, whatever closed it. Both read the run's
rows (a handful of statements per run, never per record): `end` counts what
this attempt added to the row's write counters and to the run's quarantine, so
a resumed run never counts the attempt before it twice, and counts the status
the row ended with. Metrics never fail a run: a read that fails is logged, and
the run is counted as failed when its row could not be read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from zoningsync import metrics
from zoningsync.cases.model import DocumentQuarantine
from zoningsync.config import FeedConfig
from zoningsync.errors import describe_failure
from zoningsync.records import Kind, QuarantineReason
from zoningsync.store import observed
from zoningsync.store.connect import Conn
from zoningsync.store.observed import RunCounts

log = structlog.get_logger(__name__)

NO_COUNTS = RunCounts(status="running", written={})


def quarantine_reasons(kind: Kind) -> tuple[str, ...]:
    """The reasons a feed of this kind quarantines for, drawn at 0 from its first run."""
    if kind is Kind.CASES:
        return tuple(DocumentQuarantine)
    return tuple(QuarantineReason)


@dataclass
class RunObserver:
    feed: str  # jurisdiction/feed: the `feed` label
    run_id: int
    before: RunCounts  # what the row held when this attempt began (a resumed run's part)
    started: float  # time.monotonic()

    @classmethod
    async def start(cls, conn: Conn, config: FeedConfig, run_id: int) -> RunObserver:
        """The attempt begins: its feed's series exist, it is in progress."""
        feed = config.full_id
        metrics.touch_feed(feed, quarantine_reasons(config.kind))
        observer = cls(feed, run_id, NO_COUNTS, time.monotonic())
        try:
            observer.before = await observed.run_counts(conn, feed, run_id)
            last_success = await observed.feed_last_success_at(conn, feed)
        except Exception as exc:
            log.warning("metrics: could not read the run's counts at its start",
                        feed=feed, run=run_id, error=describe_failure(exc))
        else:
            if last_success is not None:
                metrics.feed_last_success_timestamp_seconds.labels(feed).set(last_success)
        metrics.runs_in_progress.inc()  # last: no await between it and the caller's `try`
        return observer

    async def end(self, conn: Conn) -> None:
        """The attempt is over: its duration, status, writes and quarantine counted."""
        metrics.runs_in_progress.dec()
        metrics.run_duration_seconds.labels(self.feed).observe(
            time.monotonic() - self.started)
        status = "failed"  # unless the row says otherwise
        try:
            after = await observed.run_counts(conn, self.feed, self.run_id)
        except Exception as exc:
            log.warning("metrics: could not read the run's counts at its end",
                        feed=self.feed, run=self.run_id, error=describe_failure(exc))
        else:
            if after.status in metrics.RUN_STATUSES:
                status = after.status
            self._count_additions(after)
        finally:
            metrics.runs_total.labels(self.feed, status).inc()
        if status == "succeeded":
            metrics.feed_last_success_timestamp_seconds.labels(self.feed).set(time.time())

    def _count_additions(self, after: RunCounts) -> None:
        for op, rows in after.written.items():
            added = rows - self.before.written.get(op, 0)
            if added > 0:
                metrics.features_written_total.labels(self.feed, op).inc(added)
        for reason, records in after.quarantined.items():
            added = records - self.before.quarantined.get(reason, 0)
            if added > 0:
                metrics.quarantined_total.labels(self.feed, reason).inc(added)
