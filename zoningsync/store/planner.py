"""The planner's queries the demo runs and prints, as a planner would type them."""

from __future__ import annotations

from typing import Any

from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("planner.sql")


def pending_cases_query() -> str:
    """The query's text, to show a planner how it reads."""
    return SQL["pending_cases_on_parcels"]


async def pending_cases_on_parcels(conn: Conn, jurisdiction: str, limit: int
                                   ) -> list[dict[str, Any]]:
    """Pending cases of `jurisdiction` with the parcels they cover and their zoning now."""
    rows = await conn.fetch(SQL["pending_cases_on_parcels"], jurisdiction, limit)
    return [dict(r) for r in rows]
