"""Helpers for tests that run real `zoningsync run` daemons in subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ZONINGSYNC = [sys.executable, "-m", "zoningsync"]

FEED = """
[[feeds]]
id = "{feed_id}"
kind = "parcels"
type = "arcgis"
url = "{url}"
key = "PIN"
schedule = "{schedule}"
jitter = "0s"
rate_limit = {{ requests_per_second = 500, burst = 500 }}
page_size = {page_size}
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
"""


def write_sources(directory: Path, url: str, feeds: int, *, jurisdiction: str = "test-county",
                  schedule: str = "every 1d", page_size: int = 100) -> list[str]:
    """One source file of `feeds` feeds on one layer; their full ids."""
    directory.mkdir(exist_ok=True)
    ids = [f"parcels-{i:02d}" for i in range(feeds)]
    body = f'[jurisdiction]\nid = "{jurisdiction}"\n' + "".join(
        FEED.format(feed_id=i, url=url, schedule=schedule, page_size=page_size) for i in ids)
    (directory / f"{jurisdiction}.toml").write_text(body)
    return [f"{jurisdiction}/{i}" for i in ids]


@dataclass
class Daemon:
    """A `zoningsync run` subprocess whose JSON log lines land in a file."""

    proc: asyncio.subprocess.Process
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return found

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events() if e.get("event") == name), None)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def stop(self, within_s: float = 20.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), within_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise


async def start_daemon(db_url: str, sources: Path, log_path: Path, *args: str,
                       env: dict[str, str] | None = None) -> Daemon:
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *ZONINGSYNC, "--database-url", db_url, "run", "--sources", str(sources), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log,
            env={**os.environ, "ZONINGSYNC_METRICS": "off", **(env or {})})
    return Daemon(proc, log_path)


async def wait_until(check: Callable[[], Awaitable[Any]], within_s: float = 60.0,
                     every: float = 0.1) -> Any:
    """The first truthy answer of `check`, asked until `within_s` seconds passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        answer = await check()
        if answer:
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {within_s} s waiting for {check.__name__}")
        await asyncio.sleep(every)


async def zoningsync(db_url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
