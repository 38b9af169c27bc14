"""CPU seconds of processes and of the whole machine, read from /proc.

The benchmark splits each run's CPU between the tool (rusage of the child, from
wait4), PostgreSQL and the portal, and counts what the rest of a shared machine
burnt meanwhile, so a slow server or a busy neighbour is seen, not guessed.

PostgreSQL's share is the postmaster's own CPU, the CPU of its live children, and
the CPU of the children it has reaped (cutime/cstime of its stat line): a tool's
backends exit when it disconnects, before the run's second reading.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
SETTLE_TIMEOUT_S = 3.0


def _stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name of /proc/<pid>/stat (state is field 0)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def process_cpu_s(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of a live process (and its reaped children's, if asked); 0 when
    it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks * TICK_S


def children(ppid: int) -> set[int]:
    found = set()
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == ppid:
                found.add(int(entry.name))
    return found


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle since boot (user, nice, system, irq,
    softirq, steal)."""
    first = (PROC / "stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) * TICK_S


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


@dataclass(frozen=True)
class Reading:
    """CPU seconds so far of PostgreSQL, the portal and the machine, at one instant."""

    postgres_s: float
    server_s: float
    machine_s: float
    backends: frozenset[int]


class CpuMeter:
    """Readings before and after a run of one tool against one cluster and one portal."""

    def __init__(self, postmaster: int, server: int) -> None:
        self.postmaster = postmaster
        self.server = server

    def read(self) -> Reading:
        backends = children(self.postmaster)
        postgres = process_cpu_s(self.postmaster, reaped=True) + sum(
            process_cpu_s(pid) for pid in backends)
        return Reading(postgres, process_cpu_s(self.server), machine_busy_s(),
                       frozenset(backends))

    def settled(self, before: Reading) -> Reading:
        """A reading once the run's client backends have exited and been reaped (their
        CPU then sits in the postmaster's reaped total), or after a few seconds."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            extra = children(self.postmaster) - before.backends
            if not any(_is_client_backend(pid) for pid in extra):
                break
            time.sleep(0.01)
        return self.read()


def _is_client_backend(pid: int) -> bool:
    """A backend serving a connection, not an autovacuum or parallel worker (those come
    and go by themselves)."""
    try:
        title = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"worker" not in title
