"""Signals: SIGTERM/SIGINT stop the daemon gracefully (twice: at once), SIGHUP reloads.

Handlers are installed by a context manager that restores the previous ones,
and only ever hand the signal to the event loop (`call_soon_threadsafe`): the
work a signal asks for happens on the loop, never inside the handler.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def signal_handlers(loop: asyncio.AbstractEventLoop,
                    handlers: dict[signal.Signals, Callable[[signal.Signals], None]]
                    ) -> Iterator[None]:
    """Route each signal to its callback on `loop` while the block runs; restore after."""
    previous: dict[signal.Signals, Any] = {}

    def route(signum: int, _frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        loop.call_soon_threadsafe(handlers[sig], sig)

    try:
        for sig in handlers:
            previous[sig] = signal.signal(sig, route)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class Lifecycle:
    """What signals asked of the daemon: to stop, to stop at once, to reload."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reload: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int = 0
    reason: str = ""

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        """Begin a graceful stop; the first reason and exit code win."""
        if not self.stop.is_set():
            self.reason, self.exit_code = reason, exit_code
            self.stop.set()

    def on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            log.warning("second stop signal: aborting at once; interrupted runs resume "
                        "on their next run", signal=sig.name)
            abort(128 + sig.value)
        log.info("stop signal: finishing; in-flight runs are cancelled (resumable)",
                 signal=sig.name)
        self.request_stop(f"signal {sig.name}")

    def on_reload_signal(self, sig: signal.Signals) -> None:
        log.info("reload signal: reading the sources again", signal=sig.name)
        self.reload.set()

    @contextmanager
    def signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        handlers: dict[signal.Signals, Callable[[signal.Signals], None]] = dict.fromkeys(
            STOP_SIGNALS, self.on_stop_signal)
        handlers[signal.SIGHUP] = self.on_reload_signal
        with signal_handlers(loop, handlers):
            yield


def abort(exit_code: int) -> None:
    """Leave now, as `kill -9` would: the database drops our leases and claims with
    our connections, and every interrupted run resumes on its next run."""
    sys.stderr.flush()
    os._exit(exit_code)
