"""sd_notify: tell systemd the daemon is ready, what it does, that it lives, that it stops.

Datagrams go to `NOTIFY_SOCKET` (a path, or an abstract name written with a
leading `@`); with no socket configured nothing is sent, so the daemon runs the
same outside systemd. The watchdog pings come from the event loop itself, so a
blocked loop misses them and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """One process's channel to systemd's notify socket (silent when there is none)."""

    def __init__(self, address: str | None = None) -> None:
        raw = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address = ("\0" + raw[1:]) if raw and raw.startswith("@") else raw
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    def send(self, *fields: str) -> None:
        """Send `KEY=value` fields in one datagram; a full or vanished socket is logged once."""
        if self._sock is None or not self.address:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.warning("systemd notify socket refused a message", error=str(exc))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC when the watchdog is meant for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def ping_watchdog(notifier: Notifier, interval_s: float) -> None:
    """WATCHDOG=1 every `interval_s`, from the event loop, until cancelled."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        notifier.send("WATCHDOG=1")
        next_at = max(next_at + interval_s, loop.time())
        await asyncio.sleep(next_at - loop.time())
