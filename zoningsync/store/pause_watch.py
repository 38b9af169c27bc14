"""A run's ear for `zoningsync pause`, from any host: LISTEN plus a poll of its feed's row.

The watch lives on the run's lease connection, which is otherwise idle. A
NOTIFY on `zoningsync_control` naming the feed makes it read the feed's row at
once; a poll every `POLL_S` catches a pause whose notification came before
the LISTEN, or one set by hand in SQL. A run asks `paused` at its page and
chunk boundaries: an attribute read, nothing per record.

A forced run (`sync --force`) started on a paused feed ignores that pause, but
not a new one (its `paused_at` differs).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import structlog

from zoningsync.store.control import CHANNEL
from zoningsync.store.feeds import pause_row

POLL_S = 1.0
log = structlog.get_logger(__name__)


class PauseWatch:
    """Whether an operator paused the feed since the run started, and why."""

    def __init__(self, conn: asyncpg.Connection[Any], feed_id: str, *,
                 ignore_paused_at: datetime | None = None) -> None:
        self.conn = conn
        self.feed_id = feed_id
        self.ignore_paused_at = ignore_paused_at
        self.reason: str | None = None
        self.paused = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.conn.add_listener(CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._poll(), name=f"pause-watch-{self.feed_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.conn.is_closed():
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await self.conn.remove_listener(CHANNEL, self._on_notify)

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        try:
            message = orjson.loads(str(payload))
        except orjson.JSONDecodeError:
            return
        if isinstance(message, dict) and message.get("feed") == self.feed_id:
            self._wake.set()

    async def _poll(self) -> None:
        while not self.paused:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()
            try:
                row = await pause_row(self.conn, self.feed_id)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # The lease connection failing is the run's own problem to meet.
                log.warning("pause watch stopped", feed=self.feed_id, error=str(exc))
                return
            if row is not None and row["paused"] and row["paused_at"] != self.ignore_paused_at:
                self.reason = row["paused_reason"] or "no reason given"
                self.paused = True
                log.info("feed paused during its run; stopping at the next boundary",
                         feed=self.feed_id, reason=self.reason)
