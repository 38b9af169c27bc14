"""Staging: a run's fetched pages land in UNLOGGED tables by binary COPY.

A page's rows, its quarantined records, its entry in the page ledger and the
run's counters commit in one transaction, so a killed run never stages a page
twice nor forgets one it staged; the resumed run fetches only the pages missing
from the ledger. A first load also stores the page in features in that
transaction (`stage_page` with `store`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from zoningsync.config import FeedConfig
from zoningsync.http import FetchStats
from zoningsync.records import PreparedPage, RawJson, Rejected
from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("staging.sql")
WGS84_SRID = 4326
EWKB_SRID_FLAG = 0x20000000

STAGED_COLUMNS = (
    "run_id", "page_id", "source_oid", "source_key", "chunk", "parcel_id", "zoning_code",
    "zoning_desc", "attrs", "wkb", "source_edited_at", "row_hash", "address",
)
FEATURE_COLUMNS = (
    "feed", "source_key", "jurisdiction", "kind", "parcel_id", "zoning_code", "zoning_desc",
    "attrs", "geom", "h3", "row_hash", "source_edited_at", "first_run", "last_run", "address",
)
QUARANTINE_COLUMNS = ("feed", "run_id", "source_key", "source_oid", "reason", "detail", "raw")


class StatsDelta:
    """The part of a run's FetchStats not yet written to its `runs` row."""

    def __init__(self, stats: FetchStats) -> None:
        self.stats = stats
        self.flushed = (0, 0, 0)

    def take(self) -> tuple[int, int, int]:
        now = (self.stats.requests, self.stats.retries, self.stats.bytes)
        delta = (now[0] - self.flushed[0], now[1] - self.flushed[1], now[2] - self.flushed[2])
        self.flushed = now
        return delta


def _raw_json(raw: Any) -> Any:
    """Quarantine keeps the record as received; make sure it is JSON-encodable."""
    return orjson.loads(orjson.dumps(raw, default=_json_ready, option=orjson.OPT_NON_STR_KEYS))


def _json_ready(value: Any) -> Any:
    """A geometry still in its JSON text goes in as that JSON; anything else as text."""
    return orjson.Fragment(bytes(value)) if isinstance(value, RawJson) else str(value)


def quarantine_records(feed_id: str, run_id: int, rejected: Iterable[Rejected]
                       ) -> list[tuple[Any, ...]]:
    return [
        (feed_id, run_id, r.source_key, r.oid, r.reason.value, r.detail, _raw_json(r.raw))
        for r in rejected
    ]


async def staged_page_ids(conn: Conn, run_id: int) -> set[str]:
    return {row["page_id"] for row in await conn.fetch(SQL["staged_page_ids"], run_id)}


async def pages_to_premerge(conn: Conn, run_id: int) -> list[str]:
    """A first load's staged pages not yet stored in features (resumed runs have some)."""
    return [r["page_id"] for r in await conn.fetch(SQL["pages_to_premerge"], run_id)]


async def staged_oids_missing(conn: Conn, run_id: int, listed: Sequence[int]) -> list[int]:
    """The listed object ids the run neither staged nor quarantined."""
    return [r["oid"] for r in await conn.fetch(SQL["staged_oids_missing"], run_id, listed)]


async def analyze_staging(conn: Conn) -> None:
    """Fresh statistics of the staging tables before the run's queries over them."""
    async with conn.transaction():  # for the query's SET LOCAL
        await conn.execute(SQL["analyze_staging"])


async def count_staged(conn: Conn, run_id: int) -> int:
    return int(await conn.fetchval(SQL["count_staged"], run_id))


async def staged_high_water_mark(conn: Conn, run_id: int) -> datetime | None:
    """The newest edit date among the run's staged rows."""
    mark: datetime | None = await conn.fetchval(SQL["staged_high_water_mark"], run_id)
    return mark


async def enable_features_copy(conn: Conn) -> None:
    """Let this session COPY into features: geometry travels as EWKB.

    Values read back decode to the hex EWKB that PostGIS prints in text, so a
    session with the codec answers queries exactly as one without it.
    """
    await conn.set_type_codec(
        "geometry", schema="public", encoder=bytes, decoder=_hex_ewkb, format="binary")


def _hex_ewkb(data: bytes) -> str:
    return data.hex().upper()


def ewkb_4326(wkb: bytes) -> bytes:
    """The EWKB of a WKB in EPSG:4326: the type word gains the SRID flag, then the SRID."""
    order: Literal["little", "big"] = "little" if wkb[0] == 1 else "big"
    kind = int.from_bytes(wkb[1:5], order)
    return (wkb[:1] + (kind | EWKB_SRID_FLAG).to_bytes(4, order)
            + WGS84_SRID.to_bytes(4, order) + wkb[5:])


async def stage_page(
    conn: Conn,
    *,
    feed: FeedConfig,
    run_id: int,
    page: PreparedPage,
    records: int,
    stats: StatsDelta,
    store: bool,
) -> bool:
    """Stage a page in one transaction; with `store` (a first load), store it too.

    A stored page goes into features by COPY; its thin staged rows and history
    are then written from those features rows in PostgreSQL, where a load has
    CPU to spare (the client's Python, one core, is the bottleneck of a first
    load). A key the run stored already makes that COPY fail: the page then stages
    full rows, for `merge.premerge_page` to store row by row. Returns whether the
    page is stored. `enable_features_copy` must have run on `conn` for `store`.
    """
    async with conn.transaction():
        stored = store and (not page.rows or await _store_page(conn, feed, run_id, page))
        if stored and page.rows:
            await conn.execute(
                SQL["stage_stored_rows"], run_id, feed.full_id, page.page_id,
                [r.source_key for r in page.rows], [r.oid for r in page.rows])
        elif page.rows:
            await conn.copy_records_to_table(
                "staged_rows", schema_name="zoningsync", columns=STAGED_COLUMNS,
                records=[
                    (run_id, page.page_id, r.oid, r.source_key, r.chunk,
                     r.fields.get("parcel_id"), r.fields.get("zoning_code"),
                     r.fields.get("zoning_desc"), r.attrs_json, r.wkb, r.edited_at, r.row_hash,
                     r.fields.get("address"))
                    for r in page.rows
                ],
            )
        if page.rejected:
            await conn.copy_records_to_table(
                "quarantine", schema_name="zoningsync", columns=QUARANTINE_COLUMNS,
                records=quarantine_records(feed.full_id, run_id, page.rejected),
            )
        await conn.execute(SQL["record_page"], run_id, page.page_id, records, stored)
        requests, retries, received = stats.take()
        await conn.execute(
            SQL["add_page_stats"], run_id, records, len(page.rejected), page.repaired,
            requests, retries, received, len(page.rows) if stored else 0,
        )
    return stored


async def _store_page(conn: Conn, feed: FeedConfig, run_id: int, page: PreparedPage) -> bool:
    """COPY the page into features, or nothing.

    Two sessions storing pages that share keys may deadlock on each other's index
    entries; PostgreSQL then fails one of them, whose page takes the slow path.
    """
    try:
        async with conn.transaction():  # a savepoint: a failed COPY leaves no trace
            await conn.copy_records_to_table(
                "features", schema_name="zoningsync", columns=FEATURE_COLUMNS,
                records=[
                    (feed.full_id, r.source_key, feed.jurisdiction, feed.kind.value,
                     r.fields.get("parcel_id"), r.fields.get("zoning_code"),
                     r.fields.get("zoning_desc"), r.attrs_json, ewkb_4326(r.wkb), r.chunk,
                     r.row_hash, r.edited_at, run_id, run_id, r.fields.get("address"))
                    for r in page.rows
                ],
            )
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
        return False
    return True


async def stage_keys(conn: Conn, run_id: int, keys: Sequence[str]) -> None:
    if keys:
        await conn.copy_records_to_table(
            "staged_keys", schema_name="zoningsync", columns=("run_id", "source_key"),
            records=[(run_id, key) for key in keys],
        )


async def clear_staged_keys(conn: Conn, run_id: int) -> None:
    await conn.execute(SQL["clear_staged_keys"], run_id)


async def clear_retiring(conn: Conn, run_id: int) -> None:
    await conn.execute(SQL["clear_retiring"], run_id)


async def clear_run_staging(conn: Conn, run_id: int) -> None:
    """Drop a run's staging: TRUNCATE when no other run has staged anything.

    A DELETE of a 100k first load left 70 MB of dead rows, which the next run's
    staging queries scanned until autovacuum came by (a 1% re-sync went from
    2.8 to 3.8 s). TRUNCATE needs the tables to itself: a run staging next to
    ours, or another run's staging kept for its resume, means a DELETE of ours.
    """
    if await _truncate_when_alone(conn, run_id):
        return
    for name in ("clear_staged_rows", "clear_staged_pages", "clear_staged_keys",
                 "clear_retiring"):
        await conn.execute(SQL[name], run_id)


class _NotAlone(Exception):
    """Another run has staged rows: roll the savepoint back, releasing the lock."""


async def _truncate_when_alone(conn: Conn, run_id: int) -> bool:
    try:
        async with conn.transaction():  # a savepoint when the caller holds a transaction
            await conn.execute(SQL["lock_staging"])
            if await conn.fetchval(SQL["other_runs_staged"], run_id):
                raise _NotAlone
            await conn.execute(SQL["truncate_staging"])
    except (_NotAlone, asyncpg.LockNotAvailableError, asyncpg.InsufficientPrivilegeError):
        return False
    return True
