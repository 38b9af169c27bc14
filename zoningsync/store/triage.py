"""Quarantine triage: look at one record, ask for a re-read, record a decision.

A re-read is the simplest correct one: the feed's next run reads everything
(`feeds.reread_requested_at` makes it full), so every quarantined record is
fetched again and either stored or quarantined anew. For a case feed the
quarantined documents also forget their conditional-GET state, or an unchanged
one would be carried forward unparsed.
"""

from __future__ import annotations

from typing import Any

from zoningsync.sql import queries
from zoningsync.store.audit import record_action
from zoningsync.store.connect import Conn
from zoningsync.store.runs import record_as_dict

SQL = queries("triage.sql")


async def quarantine_row(conn: Conn, quarantine_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(SQL["quarantine_row"], quarantine_id)
    return None if row is None else record_as_dict(row)


async def request_reread(conn: Conn, feed_id: str | None) -> list[str]:
    """Make the next run of each feed with open quarantine a full read; the feeds."""
    async with conn.transaction():
        feeds = [r["feed"] for r in await conn.fetch(SQL["feeds_with_open_quarantine"],
                                                     feed_id)]
        if feeds:
            await conn.execute(SQL["request_reread"], feeds)
            await conn.execute(SQL["forget_quarantined_documents"], feeds)
            await record_action(conn, "quarantine_retry", feed_id or "all", outcome="done",
                                detail=f"the next run of {', '.join(feeds)} reads it all")
    return feeds


async def resolve(conn: Conn, quarantine_id: int, note: str) -> int | None:
    """Record the decision and hide the row from `quarantine list`: the audit row's id.

    None, recording nothing, when the row is missing or was resolved already.
    """
    async with conn.transaction():
        if not await conn.fetchval(SQL["lock_open_quarantine_row"], quarantine_id):
            return None
        action = await record_action(conn, "quarantine_resolve", str(quarantine_id),
                                     reason=note, outcome="done", detail="resolved")
        await conn.execute(SQL["resolve_quarantine"], quarantine_id, action)
    return action
