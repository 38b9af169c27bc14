"""What a change-tracking feed keeps between runs: its server generation and object ids.

The generation sits on the run (`runs.server_gen`, migration 0012) beside the
edit-date high-water mark, and counts once the run has succeeded: the run's
last merged chunk, the generation and the success commit in one transaction
(`sync.ArcgisRun._finish`), so a run killed before it repeats the same extract.

extractChanges names deleted features by object id; `feature_oids` maps the
ids of the feed's stored features to their keys. A full read rewrites the map
from its staged rows, a change read edits it with what it staged and retired,
both in the finishing transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("changes.sql")


async def last_server_gen(conn: Conn, feed_id: str) -> int | None:
    """The generation the feed's last success reached; None: the next read is a full one."""
    value = await conn.fetchval(SQL["last_server_gen"], feed_id)
    return None if value is None else int(value)


async def record_full_read(conn: Conn, run_id: int, feed_id: str, server_gen: int) -> None:
    """A full read's generation and its object ids (in the caller's transaction)."""
    await conn.execute(SQL["clear_feature_oids"], feed_id)
    await conn.execute(SQL["store_feature_oids"], run_id, feed_id)
    await conn.execute(SQL["save_server_gen"], run_id, server_gen)


async def record_change_read(conn: Conn, run_id: int, feed_id: str, server_gen: int,
                             deleted_oids: Sequence[int]) -> None:
    """A change read's generation and its edits to the object ids (caller's transaction)."""
    await conn.execute(SQL["forget_feature_oids"], run_id, feed_id, list(deleted_oids))
    await conn.execute(SQL["store_feature_oids"], run_id, feed_id)
    await conn.execute(SQL["save_server_gen"], run_id, server_gen)
