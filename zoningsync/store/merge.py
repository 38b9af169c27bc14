"""The chunk merge: compare each touched chunk with its checkpoint, write only what changed.

A chunk's new content is its staged rows plus (incremental runs) its stored rows
that were neither refetched nor retired; its hash is computed in PostgreSQL from
that content, so a checkpoint always means what a full read would give. Chunks
whose hash matches are skipped with zero writes; the others are merged in
batches, each batch one transaction holding the data changes, their history and
the new checkpoints together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from zoningsync.config import FeedConfig
from zoningsync.sql import queries
from zoningsync.store import deletions
from zoningsync.store.connect import Conn
from zoningsync.store.staging import clear_retiring

SQL = queries("merge.sql")
BATCH_ROWS = 10_000


class Retirement(Enum):
    """How a run decides which stored features vanished upstream."""

    ABSENT_FROM_STAGING = "full"        # a full read: whatever it did not fetch is gone
    ABSENT_FROM_KEYS = "keys"           # incremental with a key-set diff
    ABSENT_FROM_OIDS = "oids"           # incremental: ids no longer listed, by the id map
    QUARANTINED_ONLY = "none"           # incremental, nothing signalled deletions
    DELETED_UPSTREAM = "changes"        # extractChanges: the ids it deleted, keys it moved


@dataclass(frozen=True)
class ChunkState:
    chunk: str
    hash: bytes | None
    row_count: int
    checkpoint: bytes | None
    stored: bytes | None = None  # hash of the stored rows, when asked for

    @property
    def changed(self) -> bool:
        return self.hash != self.checkpoint

    @property
    def settled(self) -> bool:
        """The stored rows already are the new content: only the checkpoint is missing."""
        return self.hash is not None and self.stored == self.hash


@dataclass
class MergeTotals:
    inserted: int = 0
    updated: int = 0
    retired: int = 0
    zoning_changes: int = 0
    chunks_written: int = 0


async def feed_has_features(conn: Conn, feed_id: str) -> bool:
    """Whether the feed stores any feature: a full read of one that stores none is a first load."""
    return bool(await conn.fetchval(SQL["feed_has_features"], feed_id))


async def set_aside_duplicates(conn: Conn, run_id: int, feed_id: str, *,
                               first_load: bool) -> None:
    """Drop rows fetched twice (same OID) and quarantine every copy of a key staged twice.

    A first load also takes back the copy of such a key it stored before the twin
    arrived. In the caller's transaction; the run's counters follow.
    """
    refetched = await conn.fetchval(SQL["drop_refetched_rows"], run_id)
    duplicates = await conn.fetchval(SQL["quarantine_duplicate_keys"], run_id, feed_id)
    # Only when needed: a DELETE on features waits for the first load's
    # index builds, which hold their lock until they finish.
    if duplicates and first_load:
        await conn.execute(SQL["unstore_duplicate_keys"], run_id, feed_id)
    await conn.execute(SQL["add_duplicates"], run_id, duplicates, refetched)


async def set_chunks_total(conn: Conn, run_id: int, total: int) -> None:
    await conn.execute(SQL["set_chunks_total"], run_id, total)


async def plan_retirements(conn: Conn, run_id: int, feed_id: str,
                           how: Retirement, deleted_oids: Sequence[int] = ()) -> None:
    """Fill `retiring` for the run; recomputing it on resume gives the same keys.

    `deleted_oids` are the object ids a change read's extract deleted, or the
    mapped ids the layer lists no more (ABSENT_FROM_OIDS).
    """
    async with conn.transaction():
        await clear_retiring(conn, run_id)
        if how is Retirement.ABSENT_FROM_STAGING:
            await conn.execute(SQL["retire_absent_from_staging"], run_id, feed_id)
        elif how is Retirement.ABSENT_FROM_KEYS:
            await conn.execute(SQL["retire_absent_from_keys"], run_id, feed_id)
            await conn.execute(SQL["retire_duplicated_keys"], run_id, feed_id)
        elif how in (Retirement.DELETED_UPSTREAM, Retirement.ABSENT_FROM_OIDS):
            await conn.execute(SQL["retire_deleted_oids"], run_id, feed_id, list(deleted_oids))
            await conn.execute(SQL["retire_rekeyed_oids"], run_id, feed_id)
            if how is Retirement.ABSENT_FROM_OIDS:  # as a key read's diff would find
                await deletions.retire_rekeyed_and_doubled(conn, run_id, feed_id,
                                                           deleted_oids)
        await conn.execute(SQL["retire_quarantined"], run_id, feed_id)


async def count_retiring(conn: Conn, run_id: int) -> int:
    return int(await conn.fetchval(SQL["count_retiring"], run_id))


async def count_stored(conn: Conn, feed_id: str) -> int:
    return int(await conn.fetchval(SQL["count_feed_features"], feed_id))


async def premerge_page(conn: Conn, run_id: int, feed: FeedConfig, page_id: str) -> None:
    """Store a first load's staged page now, with its history, while the fetch goes on.

    One statement, so the rows, their history, the run's count and the ledger's
    `premerged` mark commit together. The chunk merge stays the judge: it finds
    these rows stored as staged, and writes only what they leave undone.
    """
    await conn.execute(SQL["premerge_page"], run_id, feed.full_id, page_id,
                       feed.jurisdiction, feed.kind.value)


async def checkpoint_stored_first_load(conn: Conn, run_id: int, feed_id: str) -> bool:
    """Checkpoint a first load whose every page was stored as staged, in one transaction.

    Then the feed's features are exactly the run's staged rows: nothing to retire,
    and each chunk's stored content is its new content, which `chunk_states` would
    find by hashing every row twice (0.8 s of a 100k load, with nothing running
    beside it). Returns False, writing nothing, when the run is not such a load:
    a page stored row by row, or a row dropped from staging as fetched twice or
    as a duplicate key; the chunk merge then decides as for any run.
    """
    async with conn.transaction():
        if not await conn.fetchval(SQL["first_load_stored_as_staged"], run_id, feed_id):
            return False
        await conn.execute(SQL["drop_feed_checkpoints"], run_id, feed_id)
        chunks = await conn.fetchval(SQL["checkpoint_staged_chunks"], run_id, feed_id)
        await set_chunks_total(conn, run_id, chunks)
        await conn.execute(SQL["add_merge_stats"], run_id, 0, 0, 0, chunks)
    return True


async def chunk_states(conn: Conn, run_id: int, feed_id: str,
                       *, full_read: bool, compare_stored: bool = False) -> list[ChunkState]:
    """Each touched chunk's new hash beside its checkpoint.

    An incremental run whose every fetched row is stored as fetched (an
    unchanged re-sync reading its overlap window again) hashes nothing: its
    chunks are their checkpoints (0.1 s of 25 chunks' rows at 100k parcels).
    """
    if not full_read and not compare_stored:
        kept = await conn.fetch(SQL["chunks_as_stored"], run_id, feed_id)
        if kept and all(r["hash"] is not None for r in kept):
            return [ChunkState(r["chunk"], r["hash"], r["row_count"], r["hash"])
                    for r in kept]
    chunks = [r["chunk"] for r in await conn.fetch(
        SQL["candidate_chunks"], run_id, feed_id, full_read)]
    if not chunks:
        return []
    rows = await conn.fetch(SQL["chunk_states"], run_id, feed_id, chunks, compare_stored)
    return [ChunkState(r["chunk"], r["hash"], r["row_count"], r["checkpoint"], r["stored"])
            for r in rows]


async def settle_chunks(conn: Conn, run_id: int, feed_id: str,
                        states: Sequence[ChunkState]) -> None:
    """Checkpoint chunks whose stored rows already are their new content (premerged)."""
    if not states:
        return
    async with conn.transaction():
        await conn.execute(
            SQL["save_checkpoints"], run_id, feed_id, [s.chunk for s in states],
            [s.hash for s in states], [s.row_count for s in states],
        )
        await conn.execute(SQL["add_merge_stats"], run_id, 0, 0, 0, len(states))


def batches(states: Sequence[ChunkState], max_rows: int = BATCH_ROWS
            ) -> Iterator[list[ChunkState]]:
    """Group changed chunks so that each transaction writes a bounded number of rows."""
    batch: list[ChunkState] = []
    rows = 0
    for state in states:
        if batch and rows + state.row_count > max_rows:
            yield batch
            batch, rows = [], 0
        batch.append(state)
        rows += state.row_count
    if batch:
        yield batch


async def merge_batch(conn: Conn, run_id: int, feed: FeedConfig,
                      batch: Sequence[ChunkState]) -> MergeTotals:
    """Merge a batch of changed chunks in one transaction, checkpoints included."""
    chunks = [s.chunk for s in batch]
    keep = [s for s in batch if s.hash is not None]
    emptied = [s.chunk for s in batch if s.hash is None]
    async with conn.transaction():
        upsert = await conn.fetchrow(
            SQL["merge_upsert"], run_id, feed.full_id, chunks, feed.jurisdiction,
            feed.kind.value,
        )
        assert upsert is not None
        retired = await conn.fetchval(SQL["merge_retire"], run_id, feed.full_id, chunks)
        if keep:
            await conn.execute(
                SQL["save_checkpoints"], run_id, feed.full_id, [s.chunk for s in keep],
                [s.hash for s in keep], [s.row_count for s in keep],
            )
        if emptied:
            await conn.execute(SQL["drop_checkpoints"], run_id, feed.full_id, emptied)
        totals = MergeTotals(
            inserted=upsert["inserted"], updated=upsert["updated"], retired=retired,
            zoning_changes=upsert["zoning_changes"], chunks_written=len(batch),
        )
        await conn.execute(
            SQL["add_merge_stats"], run_id, totals.inserted, totals.updated, totals.retired,
            totals.chunks_written,
        )
    return totals
