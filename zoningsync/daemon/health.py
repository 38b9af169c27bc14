"""Is the daemon healthy: a responsive event loop and a database that answers.

The loop-lag probe measures how late the loop wakes up (the
`zoningsync_event_loop_lag_seconds` histogram) and remembers the worst recent
lag; `/healthz` answers 503 with the reason when the loop was stalled or the
database does not answer within a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from zoningsync import metrics
from zoningsync.errors import describe_failure

PROBE_EVERY_S = 0.25
STALLED_AFTER_S = 5.0
DATABASE_TIMEOUT_S = 3.0


class Health:
    """The loop-lag probe's findings and the database check behind `/healthz`."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool
        self.last_lag_s = 0.0

    async def probe_loop_lag(self) -> None:
        """Sample the loop's lateness until cancelled."""
        while True:
            start = time.perf_counter()
            await asyncio.sleep(PROBE_EVERY_S)
            self.last_lag_s = max(0.0, time.perf_counter() - start - PROBE_EVERY_S)
            metrics.event_loop_lag_seconds.observe(self.last_lag_s)

    async def check(self) -> str | None:
        """None when healthy, else why not."""
        if self.last_lag_s > STALLED_AFTER_S:
            return f"the event loop stalled for {self.last_lag_s:.1f} s"
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_S):
                async with self.pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"the database does not answer: {describe_failure(exc)}"
        return None
