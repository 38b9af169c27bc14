"""Quarantine triage: list, show, ask for a full reread, resolve (audited)."""

from __future__ import annotations

from typing import Any

from zoningsync.database import ready_database
from zoningsync.settings import Settings
from zoningsync.store import triage
from zoningsync.store.connect import connection
from zoningsync.store.runs import list_quarantine


async def quarantined(settings: Settings, feed_id: str | None, *, all_runs: bool,
                      limit: int) -> list[dict[str, Any]]:
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await list_quarantine(conn, feed_id, all_runs=all_runs, limit=limit)


async def quarantined_record(settings: Settings, quarantine_id: int) -> dict[str, Any] | None:
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await triage.quarantine_row(conn, quarantine_id)


async def retry(settings: Settings, feed_id: str | None) -> list[str]:
    """The feeds whose next run reads everything again (those with open quarantine)."""
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await triage.request_reread(conn, feed_id)


async def resolve(settings: Settings, quarantine_id: int, note: str) -> int | None:
    """The audit row of the decision, or None if the record is missing or resolved."""
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await triage.resolve(conn, quarantine_id, note)
