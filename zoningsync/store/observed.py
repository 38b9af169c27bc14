"""What the metrics read from the store, once per run or per health check.

A run's write and quarantine counts are already in its `runs` and `quarantine`
rows, so the metrics read them there at the edges of an attempt rather than
counting inside the merge: the hot path stays untouched, and the numbers are
the ones `zoningsync runs` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("observed.sql")


@dataclass(frozen=True)
class RunCounts:
    """A run's status and counters as its rows hold them now."""

    status: str
    written: dict[str, int]  # op (insert, update, retire) -> rows
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> records


async def run_counts(conn: Conn, feed_id: str, run_id: int) -> RunCounts:
    row = await conn.fetchrow(SQL["run_counts"], run_id)
    if row is None:
        raise LookupError(f"run {run_id} has no row")
    reasons = await conn.fetch(SQL["run_quarantine_by_reason"], feed_id, run_id)
    return RunCounts(
        status=row["status"],
        written={"insert": row["inserted"], "update": row["updated"],
                 "retire": row["retired"]},
        quarantined={r["reason"]: r["records"] for r in reasons})


async def feed_last_success_at(conn: Conn, feed_id: str) -> float | None:
    """When the feed last succeeded, as Unix time; None if it never did."""
    value = await conn.fetchval(SQL["feed_last_success_at"], feed_id)
    return None if value is None else float(value)


async def ping(conn: Conn) -> None:
    """Ask the server the cheapest question there is (the health check's)."""
    await conn.fetchval(SQL["ping"])
