"""Named side tasks watched together: one that ends or crashes stops the daemon.

Like procrastinate's side tasks: every long-lived task (scheduler, control
listener, watchdog pinger, metrics server, loop-lag probe) has a name, and
`asyncio.wait(FIRST_COMPLETED)` watches them with the stop event. A task that
returns or raises while the daemon is meant to run is a crash: it is logged
with its name and reason and the daemon stops with exit 1, so systemd restarts
it. Every task's outcome is read, so no exception is ever left unretrieved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

from zoningsync.daemon.lifecycle import Lifecycle
from zoningsync.errors import describe_failure

log = structlog.get_logger(__name__)


class Supervisor:
    """Starts named side tasks and turns the first one that ends into a stop."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.tasks: dict[asyncio.Task[Any], str] = {}

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks[task] = name
        return task

    async def watch(self) -> None:
        """Return once a stop is requested, or once a side task ended (a crash: exit 1)."""
        stop = asyncio.get_running_loop().create_task(self.lifecycle.stop.wait(),
                                                      name="stop-request")
        try:
            done, _ = await asyncio.wait({stop, *self.tasks},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop
        for task in done:
            if task is stop:
                continue
            self.lifecycle.request_stop(self._crash_reason(task), exit_code=1)
            log.error("side task ended; the daemon stops", task=self.tasks[task],
                      reason=self.lifecycle.reason)

    def _crash_reason(self, task: asyncio.Task[Any]) -> str:
        name = self.tasks[task]
        if task.cancelled():
            return f"{name} was cancelled"
        exc = task.exception()
        if exc is None:
            return f"{name} ended"
        log.debug("side task traceback", task=name, exc_info=exc)
        return f"{name} crashed: {describe_failure(exc)}"

    async def stop_all(self) -> None:
        """Cancel every side task still running and read every outcome."""
        for task in self.tasks:
            task.cancel()
        for task, name in self.tasks.items():
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.error("side task failed while stopping", task=name,
                          error=describe_failure(exc))
