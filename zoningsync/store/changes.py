"""What an ArcGIS feed keeps between runs: its server generation and object ids.

The generation of a change-tracking feed sits on the run (`runs.server_gen`,
migration 0012) beside the edit-date high-water mark, and counts once the run
has succeeded: the run's last merged chunk, the generation and the success
commit in one transaction (`sync.ArcgisRun._finish`), so a run killed before it
repeats the same extract.

extractChanges names deleted features by object id, and an edit-date read finds
its deletions from the layer's id list (`store/deletions.py`): `feature_oids`
maps the ids of every ArcGIS feed's stored features to their keys. A full read
rewrites the map from its staged rows, an incremental read edits it with what
it staged and retired, both in the finishing transaction.
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


async def record_full_read(conn: Conn, run_id: int, feed_id: str) -> None:
    """A full read's object ids replace the map (in the caller's transaction)."""
    await conn.execute(SQL["clear_feature_oids"], feed_id)
    await conn.execute(SQL["store_full_read_oids"], run_id, feed_id)


async def record_incremental_read(conn: Conn, run_id: int, feed_id: str,
                                  deleted_oids: Sequence[int] = ()) -> None:
    """An incremental read's edits to the map: what it staged, retired and, for a
    change read, the ids its extract deleted (in the caller's transaction)."""
    await conn.execute(SQL["forget_feature_oids"], run_id, feed_id, list(deleted_oids))
    await conn.execute(SQL["store_feature_oids"], run_id, feed_id)


async def save_server_gen(conn: Conn, run_id: int, server_gen: int) -> None:
    """The generation a change-tracking run brings its feed to (caller's transaction)."""
    await conn.execute(SQL["save_server_gen"], run_id, server_gen)
