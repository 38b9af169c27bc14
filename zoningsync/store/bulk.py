"""Secondary indexes of `features`, built after a first load into an empty table.

Kept up to date row by row, the GiST index on geometries took 2.2 s of the 5.4 s
a 100k first load spends inserting, and the parcel_id and zoning_code indexes
another 0.9 s; built once over the loaded rows, they cost a fraction of that (the
(feed, h3) index: 0.26 s of PostgreSQL CPU kept row by row, 0.09 s built).
The expression indexes that match cases to parcels (normalized parcel id and
address, migration 0009) would run their normalizing function on every row.
osm2pgsql and ogr2ogr build theirs after the load for the same reason. Only a
load into an entirely empty `features` table drops them: once any feed is stored,
its readers keep their indexes and later loads maintain them row by row.

The definitions live in the migrations and, for rebuilding, in bulk.sql, whose
`create_<index>` statements are also the one list of the indexes deferred; a test
holds the rebuilt indexes to the migrated ones.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from zoningsync.sql import queries
from zoningsync.store.connect import Conn
from zoningsync.taskgroup import task_group

SQL = queries("bulk.sql")
log = structlog.get_logger(__name__)

SECONDARY_INDEXES = tuple(name.removeprefix("create_") for name in SQL
                          if name.startswith("create_"))


async def defer_secondary_indexes(conn: Conn) -> bool:
    """Drop the secondary indexes if `features` is empty; say whether they were dropped.

    A table in use (a reader holding a lock for over 2 s) or a role that does not
    own the table keeps its indexes: the load is then only slower.
    """
    # Asked without a lock first: a waiting ACCESS EXCLUSIVE request would queue
    # every reader of a populated table behind it.
    if await conn.fetchval(SQL["features_stored"]):
        return False
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '2s'")
            await conn.execute("LOCK TABLE zoningsync.features IN ACCESS EXCLUSIVE MODE")
            if await conn.fetchval(SQL["features_stored"]):
                return False
            for name in SECONDARY_INDEXES:
                await conn.execute(f"DROP INDEX IF EXISTS zoningsync.{name}")
    except (asyncpg.InsufficientPrivilegeError, asyncpg.LockNotAvailableError) as exc:
        log.info("first load keeps the secondary indexes up to date row by row",
                 reason=str(exc))
        return False
    return True


async def ensure_secondary_indexes(conn: Conn) -> list[str]:
    """Build the secondary indexes that are missing (after a load, or a load that died).

    Runs that start together on an empty table would race to create the same
    index (`CREATE INDEX IF NOT EXISTS` is not safe against a concurrent twin:
    a unique violation in pg_class), so each build takes a transaction-scoped
    advisory lock of its index and looks again once it holds it. Each index
    commits on its own: a build cut short leaves the rest to the next run.
    """
    if not await conn.fetchval(SQL["missing_secondary_indexes_any"], list(SECONDARY_INDEXES)):
        return []
    built = [name for name in SECONDARY_INDEXES if await _build_if_missing(conn, name)]
    if built:
        log.info("built secondary indexes", indexes=built)
    return built


async def _build_if_missing(conn: Conn, name: str) -> bool:
    async with conn.transaction():
        await conn.execute(SQL["lock_index_build"], name)
        await conn.execute(SQL["lock_features_for_build"])
        if not await conn.fetchval(SQL["index_missing"], name):
            return False
        await conn.execute(SQL[f"create_{name}"])
    return True


async def build_secondary_indexes(pool: asyncpg.Pool[Any], *, sessions: int) -> list[str]:
    """`ensure_secondary_indexes` over `sessions` sessions, each taking the next index.

    At the end of a first load the client waits for these builds with nothing
    else to do; the GiST build cannot use parallel workers, so on one session
    the run waited for it and then for each btree in turn (a 100k load waited
    0.34 s after its checkpoints). CREATE INDEX takes a SHARE lock, which its
    twins on other indexes of the table share.
    """
    pending = list(SECONDARY_INDEXES)
    built: list[str] = []

    async def builder() -> None:
        async with pool.acquire() as conn:
            while pending:
                name = pending.pop(0)
                if await _build_if_missing(conn, name):
                    built.append(name)

    async with task_group() as group:
        for index in range(sessions):
            group.create_task(builder(), name=f"build-indexes-{index}")
    if built:
        log.info("built secondary indexes", indexes=built, sessions=sessions)
    return built


async def analyze_features(conn: Conn) -> None:
    """Give the planner the statistics of a first load (see bulk.sql for the columns)."""
    await conn.execute(SQL["analyze_features"])
