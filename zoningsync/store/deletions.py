"""An incremental read's deletions from the layer's id list, when the stored id map holds.

A run that may have seen deletions used to read every key of the layer to diff
them with the stored ones (at 100k parcels, 51 requests and 50 COPYs). The run
already holds the layer's object ids, and `feature_oids` maps the ids of the
stored features to their keys: the keys whose ids are no longer listed are the
deletions. The map only stands for the layer while its ids are not renumbered,
which is detected, never assumed: `map_vouches` wants every listed id the run
did not read itself in the map, and the run checks a sample of ids against the
server's keys; when either fails the run reads the keys as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("deletions.sql")


async def map_vouches(conn: Conn, run_id: int, feed_id: str, listed: Sequence[int]) -> bool:
    """Whether the id map covers the stored features and every listed id not read this run."""
    return bool(await conn.fetchval(SQL["oid_map_vouches"], run_id, feed_id, list(listed)))


async def mapped_keys(conn: Conn, run_id: int, feed_id: str, oids: Sequence[int]
                      ) -> dict[int, str]:
    rows = await conn.fetch(SQL["mapped_keys"], run_id, feed_id, list(oids))
    return {int(r["source_oid"]): str(r["source_key"]) for r in rows}


async def retire_absent_from_oids(conn: Conn, run_id: int, feed_id: str,
                                  listed: Sequence[int]) -> None:
    """Fill `retiring` with what a key read's diff would find, but for the keys that
    ids read this run no longer carry (`merge.plan_retirements` adds those), in the
    caller's transaction."""
    oids = list(listed)
    await conn.execute(SQL["retire_absent_from_oids"], run_id, feed_id, oids)
    await conn.execute(SQL["retire_listed_twice"], run_id, feed_id, oids)
