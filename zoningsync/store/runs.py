"""The `runs` table: starting, resuming, finishing and listing feed runs.

Every text written to `runs.error` and `runs.warnings` goes through `redact()`
here, where it is written, so that no caller can forget: an upstream error page
echoing a token ends in the table masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from zoningsync.redact import redact
from zoningsync.sql import queries
from zoningsync.store.connect import Conn
from zoningsync.store.lease import LEASE_NAMESPACE
from zoningsync.store.staging import clear_run_staging

SQL = queries("runs.sql")
# An unfinished run older than this is closed and its staging dropped by the next
# sync of any feed: a week-old partial read is not worth resuming.
STALE_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class InterruptedRun:
    id: int
    mode: str | None
    phase: str
    cursor: dict[str, Any]
    fingerprint: str | None


@dataclass(frozen=True)
class LastSuccess:
    id: int
    mode: str
    high_water_mark: datetime | None
    layer_count: int | None
    oid_set_hash: str | None
    fingerprint: str | None
    started_at: datetime | None = None  # where an incremental case read starts


async def interrupted_run(conn: Conn, feed_id: str) -> InterruptedRun | None:
    """The feed's run left `running` by a process that died (we hold the lease now)."""
    row = await conn.fetchrow(SQL["interrupted_run"], feed_id)
    if row is None:
        return None
    return InterruptedRun(row["id"], row["mode"], row["phase"], dict(row["cursor"]),
                          row["fingerprint"])


async def last_success(conn: Conn, feed_id: str) -> LastSuccess | None:
    row = await conn.fetchrow(SQL["last_success"], feed_id)
    if row is None:
        return None
    return LastSuccess(row["id"], row["mode"], row["high_water_mark"], row["layer_count"],
                       row["oid_set_hash"], row["fingerprint"], row["started_at"])


async def runs_since_full(conn: Conn, feed_id: str) -> int:
    return int(await conn.fetchval(SQL["runs_since_full"], feed_id))


async def start_run(conn: Conn, feed_id: str, fingerprint: str) -> int:
    """Open a new run, before its plan; runs it supersedes are closed, their staging dropped.

    The row exists before anything is asked upstream, so a run that fails while
    planning (metadata, token, count) still leaves a failed run to look at.
    """
    run_id = int(await conn.fetchval(SQL["start_run"], feed_id, fingerprint))
    for row in await conn.fetch(SQL["abandon_older_runs"], feed_id, run_id):
        await clear_run_staging(conn, row["id"])
    return run_id


async def abandon_stale_runs(conn: Conn, *, lease_pid: int,
                             older_than: timedelta = STALE_AFTER) -> list[int]:
    """Close every feed's unfinished runs older than `older_than`; drop their staging.

    `lease_pid` is the backend holding the caller's own lease: its feed's stale run
    is abandoned too, rather than resumed.
    """
    stale = [int(row["id"]) for row in await conn.fetch(
        SQL["abandon_stale_runs"], older_than, LEASE_NAMESPACE, lease_pid)]
    for run_id in stale:
        await clear_run_staging(conn, run_id)
    return stale


async def save_plan(conn: Conn, run_id: int, *, mode: str, cursor: dict[str, Any],
                    expected: int | None, layer_count: int | None) -> None:
    """The run's plan is decided: its mode and cursor, and it moves on to fetch."""
    await conn.execute(SQL["save_plan"], run_id, mode, cursor, expected, layer_count)


async def save_cursor(conn: Conn, run_id: int, cursor: dict[str, Any]) -> None:
    await conn.execute(SQL["save_cursor"], run_id, cursor)


async def set_phase(conn: Conn, run_id: int, phase: str) -> None:
    await conn.execute(SQL["set_phase"], run_id, phase)


async def add_fetch_stats(conn: Conn, run_id: int, requests: int, retries: int,
                          received: int) -> None:
    """Add the requests, retries and bytes not yet counted (see staging.StatsDelta)."""
    await conn.execute(SQL["add_fetch_stats"], run_id, requests, retries, received)


async def resume_run(conn: Conn, run_id: int) -> None:
    await conn.execute(SQL["resume_run"], run_id)


async def fail_run(conn: Conn, run_id: int, status: str, error: str,
                   seconds: float) -> None:
    """Stop a run early; its staging stays so the next sync resumes it.

    A run stopped while planning has nothing to resume and is closed.
    """
    await conn.execute(SQL["fail_run"], run_id, status, redact(error), seconds)


async def close_run(conn: Conn, run_id: int, status: str, error: str,
                    seconds: float) -> None:
    """End a run for good without success (held, or outdated by a settings change).

    Its staging is dropped: the feed's next run reads again from scratch.
    """
    async with conn.transaction():
        await conn.execute(SQL["close_run"], run_id, status, redact(error), seconds)
        await clear_run_staging(conn, run_id)


async def finish_run(conn: Conn, run_id: int, *, high_water_mark: datetime | None,
                     oid_set_hash: str, seconds: float, staged: int,
                     warnings: list[str]) -> None:
    """Mark a run succeeded with its counters (in the caller's transaction)."""
    await conn.execute(
        SQL["finish_run"], run_id, "succeeded", None, high_water_mark, oid_set_hash, seconds,
        staged, [redact(w) for w in warnings],
    )


def record_as_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A row of runs or quarantine as JSON-ready data (timestamps as ISO strings)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "cursor":
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out


async def get_run(conn: Conn, run_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(SQL["run_by_id"], run_id)
    assert row is not None
    return record_as_dict(row)


async def list_runs(conn: Conn, feed_id: str | None, limit: int
                    ) -> list[dict[str, Any]]:
    return [record_as_dict(r) for r in await conn.fetch(SQL["list_runs"], feed_id, limit)]


async def list_quarantine(conn: Conn, feed_id: str | None, *,
                          all_runs: bool, limit: int) -> list[dict[str, Any]]:
    """Each feed's latest finished run's quarantine (or every run's), and what documents hold.

    An unchanged quarantined document is not quarantined again by later runs, yet
    stays quarantined: the row its document points to is listed whatever its run.
    """
    rows = await conn.fetch(SQL["list_quarantine"], feed_id, all_runs, limit)
    return [record_as_dict(r) for r in rows]
