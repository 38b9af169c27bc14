"""Progress of a run: a rich progress bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

log = structlog.get_logger(__name__)


class Reporter(Protocol):
    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, steps: int = 1, records: int = 0) -> None: ...
    def close(self) -> None: ...


class BarReporter:
    """A progress bar on stderr, one line per phase."""

    def __init__(self, feed_id: str) -> None:
        self.feed_id = feed_id
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[records]} records"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self.progress.start()
        self.task: TaskID | None = None
        self.records = 0

    def phase(self, name: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.stop_task(self.task)
        self.records = 0
        self.task = self.progress.add_task(f"{self.feed_id} {name}", total=total, records=0)

    def advance(self, steps: int = 1, records: int = 0) -> None:
        if self.task is not None:
            self.records += records
            self.progress.update(self.task, advance=steps, records=self.records)

    def close(self) -> None:
        self.progress.stop()


class LogReporter:
    """Structured log lines, at most one every few seconds, for journald and CI."""

    def __init__(self, feed_id: str, every_s: float = 5.0) -> None:
        self.feed_id = feed_id
        self.every_s = every_s
        self.name = ""
        self.total: int | None = None
        self.done = 0
        self.records = 0
        self.last = time.monotonic()

    def phase(self, name: str, total: int | None) -> None:
        self.name, self.total, self.done, self.records = name, total, 0, 0
        log.info("phase", feed=self.feed_id, phase=name, total=total)

    def advance(self, steps: int = 1, records: int = 0) -> None:
        self.done += steps
        self.records += records
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            log.info("progress", feed=self.feed_id, phase=self.name, done=self.done,
                     total=self.total, records=self.records)

    def close(self) -> None:
        return None


def reporter_for(feed_id: str, *, interactive: bool | None = None) -> Reporter:
    use_bar = sys.stderr.isatty() if interactive is None else interactive
    return BarReporter(feed_id) if use_bar else LogReporter(feed_id)
