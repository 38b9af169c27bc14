"""What every feed the database knows is doing, whichever daemon runs it."""

from __future__ import annotations

from typing import Any

from zoningsync.database import ready_database
from zoningsync.settings import Settings
from zoningsync.store.connect import connection
from zoningsync.store.lease import LEASE_NAMESPACE
from zoningsync.store.schedules import feed_status


async def feed_states(settings: Settings) -> list[dict[str, Any]]:
    url = await ready_database(settings)
    async with connection(url) as conn:
        return await feed_status(conn, LEASE_NAMESPACE)
