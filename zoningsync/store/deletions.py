"""An incremental read's deletions from the layer's id list, when the stored id map holds.

A run that may have seen deletions used to read every key of the layer to diff
them with the stored ones (at 100k parcels, 51 requests and 50 COPYs). The run
already holds the layer's object ids, and `feature_oids` maps the ids of the
stored features to their keys: the mapped ids no longer listed are the
deletions, retired like a change read's deletes. The map only stands for the
layer while its ids are not renumbered, which is detected, never assumed: the
run (`sync.ArcgisRun._vanished_oids`) wants every listed id the map lacks to be
one it read itself or one the feed quarantined (never stored), the map to hold
one id per stored feature, and a sample of ids to carry the keys the map gives
them; else it reads the keys as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("deletions.sql")


async def unmatched_oids(conn: Conn, feed_id: str, listed: Sequence[int]
                         ) -> tuple[list[int], list[int]]:
    """The listed ids the map lacks, and the mapped ids no longer listed."""
    row = await conn.fetchrow(SQL["unmatched_oids"], feed_id, list(listed))
    assert row is not None  # an aggregate: one row, even when nothing differs
    return list(row["unknown"]), list(row["vanished"])


async def map_may_stand(conn: Conn, feed_id: str, map_rows: int) -> bool:
    """Whether a map of `map_rows` ids may stand for the feed's features: one id per
    stored feature, and no rollback since the last full read rewrote the map."""
    row = await conn.fetchrow(SQL["map_and_features"], feed_id)
    assert row is not None
    return int(row["stored"]) == map_rows and not row["rolled_back"]


async def never_quarantined(conn: Conn, feed_id: str, oids: Sequence[int]) -> list[int]:
    """Those of these ids that no run of the feed quarantined."""
    return [int(r["oid"]) for r in await conn.fetch(SQL["never_quarantined"], feed_id,
                                                     list(oids))]


async def mapped_keys(conn: Conn, run_id: int, feed_id: str, oids: Sequence[int]
                      ) -> dict[int, str]:
    """The map's keys of these ids, leaving out the ids the run read itself."""
    rows = await conn.fetch(SQL["mapped_keys"], run_id, feed_id, list(oids))
    return {int(r["source_oid"]): str(r["source_key"]) for r in rows}


async def retire_rekeyed_and_doubled(conn: Conn, run_id: int, feed_id: str,
                                vanished: Sequence[int]) -> None:
    """What a key read's diff finds beyond the vanished ids' keys and the rekeyed
    ones (`merge.plan_retirements` adds those), in the caller's transaction."""
    await conn.execute(SQL["retire_requarantined_oids"], run_id, feed_id)
    await conn.execute(SQL["retire_listed_twice"], run_id, feed_id, list(vanished))
