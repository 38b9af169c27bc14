"""Claims of due feeds: only this daemon's feeds, never one it runs, at the cost of what is due."""

from __future__ import annotations

from typing import Any

import asyncpg

from zoningsync.sql import queries
from zoningsync.store import schedules

NOT_DUE = 3000
DUE = 4


async def scheduled(db: asyncpg.Connection[Any], due: list[str], not_due: list[str]) -> None:
    """Feed rows and schedules rows: `due` due a second ago, `not_due` tomorrow."""
    ids = due + not_due
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " SELECT id, split_part(id, '/', 1), split_part(id, '/', 2), 'parcels', 'arcgis',"
        " 'http://127.0.0.1/layer' FROM unnest($1::text[]) id", ids)
    await db.execute(
        "INSERT INTO zoningsync.schedules (feed, due_at)"
        " SELECT id, CASE WHEN id = ANY($2::text[]) THEN now() - interval '1 s'"
        " ELSE now() + interval '1 day' END FROM unnest($1::text[]) id", ids, due)
    await db.execute("ANALYZE zoningsync.schedules")
    await db.execute("ANALYZE zoningsync.feeds")


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:04d}/parcels" for i in range(n)]


async def test_a_claim_takes_only_due_feeds_the_session_holds(
        db: asyncpg.Connection[Any]) -> None:
    mine, theirs = ids("mine", 3), ids("theirs", 3)
    await scheduled(db, mine + theirs, ids("later", 5))
    await schedules.use_daemon_feeds(db, mine + ids("later", 5))

    claims = await schedules.claim_due(db, "node-a", [], 10)

    assert sorted(c.feed for c in claims) == mine


async def test_a_claim_skips_the_feeds_this_daemon_runs(db: asyncpg.Connection[Any]) -> None:
    mine = ids("mine", 3)
    await scheduled(db, mine, [])
    await schedules.use_daemon_feeds(db, mine)

    claims = await schedules.claim_due(db, "node-a", mine[:1], 10)

    assert sorted(c.feed for c in claims) == mine[1:]


async def test_a_new_feed_set_replaces_the_one_the_session_held(
        db: asyncpg.Connection[Any]) -> None:
    old, new = ids("old", 2), ids("new", 2)
    await scheduled(db, old + new, [])
    await schedules.use_daemon_feeds(db, old)
    await schedules.use_daemon_feeds(db, new)

    claims = await schedules.claim_due(db, "node-a", [], 10)

    assert sorted(c.feed for c in claims) == new


def scanned(node: dict[str, Any], relation: str) -> int:
    """Rows the plan's scans of `relation` produced or filtered away, all nodes."""
    own = 0
    if node.get("Relation Name") == relation or node.get("Index Name", "").startswith(relation):
        own = int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
    return own + sum(scanned(child, relation) for child in node.get("Plans", []))


async def test_a_tick_reads_no_schedules_row_of_a_feed_that_is_not_due(
        db: asyncpg.Connection[Any]) -> None:
    due, later = ids("due", DUE), ids("later", NOT_DUE)
    await scheduled(db, due, later)
    await schedules.use_daemon_feeds(db, due + later)

    async with db.transaction():
        plan = await db.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) "
                                 + queries("schedules.sql")["claim_due"], "node-a", [], DUE)

    assert scanned(plan[0]["Plan"], "schedules") <= 4 * DUE
