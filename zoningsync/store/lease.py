"""Feed leases: at most one process syncs a feed at a time, across hosts.

The lease is a session advisory lock held on a connection of its own for the
whole run. PostgreSQL drops it the moment that connection dies, so a rerun right
after `kill -9` proceeds at once: no lease row to expire, no timeout to wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from zoningsync.errors import FeedBusy
from zoningsync.store.connect import connect

LEASE_NAMESPACE = 0x7A73  # first advisory-lock key: "zs"


@asynccontextmanager
async def feed_lease(url: str, feed_id: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """Hold the feed's lease; raise FeedBusy if another process holds it."""
    conn = await connect(url)
    try:
        got = await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, hashtext($2))", LEASE_NAMESPACE, feed_id
        )
        if not got:
            holder = await conn.fetchrow(
                """
                SELECT a.pid, a.client_addr, a.backend_start
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.classid = $1
                  AND l.objid = hashtext($2)::oid AND l.granted
                """,
                LEASE_NAMESPACE, feed_id,
            )
            who = f" (database backend pid {holder['pid']})" if holder else ""
            raise FeedBusy(
                f"feed {feed_id} is being synced by another zoningsync process{who}; "
                "wait for it to finish"
            )
        yield conn
    finally:
        await conn.close()
