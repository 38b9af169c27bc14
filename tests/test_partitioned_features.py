"""features and feature_history partitioned by feed (migration 0013), keys that include it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from tests.test_migrations import database_url
from tests.test_sync import run
from zoningsync.migrate import apply_migrations
from zoningsync.portal.county import County
from zoningsync.portal.server import run_portal
from zoningsync.store.connect import connection

MIGRATIONS = Path(__file__).parents[1] / "migrations"

UNIQUE_KEYS = """
SELECT coalesce(parent.relname, c.relname) AS relname, ic.relname AS index,
       array_agg(a.attname::text ORDER BY k.ord) AS columns
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
LEFT JOIN pg_inherits h ON h.inhrelid = c.oid
LEFT JOIN pg_class parent ON parent.oid = h.inhparent
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'zoningsync'
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisunique AND coalesce(parent.relname, c.relname) = ANY($1::text[])
GROUP BY coalesce(parent.relname, c.relname), ic.relname
"""
# Every table the migration moves or rekeys, and what a snapshot of it is ordered by.
MOVED_TABLES = ("features", "feature_history", "checkpoint_history", "zoning_changes",
                "cases", "case_history", "case_status_history", "documents")
VIEWS = ("parcels", "zoning_districts", "parcel_history", "rezoning_cases", "pending_cases",
         "zoning_changes_recent")
VIEW_STATE = """
SELECT c.relname, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'), c.relacl::text,
       array_agg(col_description(c.oid, a.attnum) ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'zoningsync'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.relkind = 'v'
GROUP BY c.oid ORDER BY c.relname
"""
TABLE_STATE = """
SELECT c.relname, obj_description(c.oid, 'pg_class'), c.relacl::text,
       array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
                 || a.attnotnull || ' ' || a.attidentity::text || ' '
                 || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' '
                 || coalesce(col_description(c.oid, a.attnum), '') ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'zoningsync'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relname = ANY($1::text[])
GROUP BY c.oid ORDER BY c.relname
"""

# Rows of two feeds (so they land in two partitions) in every table 0013 moves or
# rekeys, written the way the 0012 schema takes them.
ROWS_AT_0012 = """
INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url) VALUES
    ('a-county/parcels', 'a-county', 'parcels', 'parcels', 'arcgis', 'http://127.0.0.1/a'),
    ('b-county/parcels', 'b-county', 'parcels', 'parcels', 'arcgis', 'http://127.0.0.1/b'),
    ('a-county/cases', 'a-county', 'cases', 'cases', 'html', 'http://127.0.0.1/c');
INSERT INTO zoningsync.runs (feed, mode, status) VALUES
    ('a-county/parcels', 'full', 'succeeded'), ('b-county/parcels', 'full', 'succeeded'),
    ('a-county/cases', 'full', 'succeeded');
INSERT INTO zoningsync.features
    (feed, source_key, jurisdiction, kind, parcel_id, zoning_code, attrs, geom, h3, row_hash,
     first_run, last_run, address)
SELECT f.feed, 'K' || g, split_part(f.feed, '/', 1), 'parcels', 'P-' || g, 'R-' || (g % 3),
       jsonb_build_object('n', g),
       ST_Multi(ST_MakeEnvelope(-78.6 + g * 0.001, 35.7, -78.6 + g * 0.001 + 0.0005, 35.7005,
                                4326)),
       '872a', sha256(('K' || g)::bytea), f.run, f.run, g || ' MAIN ST'
FROM (VALUES ('a-county/parcels', 1), ('b-county/parcels', 2)) AS f(feed, run),
     generate_series(1, 6) AS g;
INSERT INTO zoningsync.feature_history (run_id, op, feed, source_key, new_row_hash)
SELECT first_run, 'insert', feed, source_key, row_hash FROM zoningsync.features ORDER BY id;
WITH gone AS (
    DELETE FROM zoningsync.features
    WHERE id = (SELECT max(id) FROM zoningsync.features) RETURNING *
)
INSERT INTO zoningsync.feature_history
    (run_id, op, feed, source_key, parcel_id, zoning_code, attrs, geom, h3, row_hash,
     first_run, last_run, updated_at, address, feature_id, created_at)
SELECT last_run, 'retire', feed, source_key, parcel_id, zoning_code, attrs, geom, h3,
       row_hash, first_run, last_run, updated_at, address, id, created_at
FROM gone;
INSERT INTO zoningsync.chunk_checkpoints (feed, chunk, hash, row_count, run_id)
VALUES ('a-county/parcels', '872a', '\\x01', 6, 1);
INSERT INTO zoningsync.checkpoint_history
    (run_id, feed, chunk, hash, row_count, prior_run_id, updated_at)
VALUES (1, 'a-county/parcels', '872a', '\\x00', 5, 1, now());
INSERT INTO zoningsync.zoning_changes
    (feed, source_key, jurisdiction, kind, parcel_id, old_code, new_code, run_id)
VALUES ('a-county/parcels', 'K1', 'a-county', 'parcels', 'P-1', 'R-0', 'R-1', 1);
INSERT INTO zoningsync.cases (feed, jurisdiction, case_number, status, status_class,
                              parcel_ids, row_hash, first_run, last_run)
VALUES ('a-county/cases', 'a-county', 'Z-1-2026', 'Filed', 'pending', '{P-1}', '\\x02', 3, 3);
INSERT INTO zoningsync.case_history (run_id, op, feed, case_number, new_row_hash)
VALUES (3, 'insert', 'a-county/cases', 'Z-1-2026', '\\x02');
INSERT INTO zoningsync.case_status_history
    (case_id, feed, case_number, field, old_value, new_value, run_id)
SELECT id, feed, case_number, 'status', 'Filed', 'Heard', 3 FROM zoningsync.cases;
INSERT INTO zoningsync.documents (feed, url, sha256, last_run)
VALUES ('a-county/cases', 'http://127.0.0.1/c/list', 'ab', 3);
"""


@pytest.fixture
async def db_at_0012(cluster_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database migrated to 0012 only, dropped afterwards."""
    directory = tmp_path / "migrations-0012"
    directory.mkdir()
    for path in MIGRATIONS.glob("00*.sql"):
        if int(path.name[:4]) <= 12:
            shutil.copy(path, directory)
    name = f"zs_p_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url(cluster_url, name)
        await apply_migrations(url, directory)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def snapshot(conn: asyncpg.Connection, tables: tuple[str, ...]) -> dict[str, list[str]]:
    """Every row of each table as its text form, in id order."""
    return {table: [r[0] for r in await conn.fetch(
        f"SELECT t::text FROM zoningsync.{table} t ORDER BY t.id")] for table in tables}


async def test_the_merge_counts_inserts_and_updates_exactly_on_the_partitioned_table(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    assert await db.fetchval(
        "SELECT relkind::text FROM pg_class WHERE oid = 'zoningsync.features'::regclass") == "p"
    async with run_portal(County(1500, seed=11)) as portal:
        feed = feed_config(tmp_path, portal.layer_url(0))
        await run(db_url, tmp_path, feed)
        stored = "SELECT source_key, row_hash FROM zoningsync.features"
        before = {r["source_key"]: r["row_hash"] for r in await db.fetch(stored)}
        portal.county.publish(0.05, seed=2)
        summary = await run(db_url, tmp_path, feed)
    after = {r["source_key"]: r["row_hash"] for r in await db.fetch(stored)}
    inserted = after.keys() - before.keys()
    updated = {k for k in after.keys() & before.keys() if after[k] != before[k]}
    retired = before.keys() - after.keys()
    assert summary["mode"] == "incremental"
    assert inserted and updated and retired
    assert (summary["inserted"], summary["updated"], summary["retired"]) == (
        len(inserted), len(updated), len(retired))
    history = await db.fetch(
        "SELECT op, array_agg(source_key) AS keys FROM zoningsync.feature_history"
        " WHERE run_id = (SELECT max(id) FROM zoningsync.runs) GROUP BY op")
    assert {r["op"]: set(r["keys"]) for r in history} == {
        "insert": inserted, "update": updated, "retire": retired}


async def test_every_unique_index_of_features_and_feature_history_includes_feed(
        db: asyncpg.Connection) -> None:
    keys = await db.fetch(UNIQUE_KEYS, ["features", "feature_history"])
    assert len(keys) == 2 * (1 + 16)  # each parent's primary key and its partitions' own
    assert {r["columns"][0] for r in keys} == {"feed"}
    assert {tuple(r["columns"]) for r in keys} == {("feed", "source_key"), ("feed", "id")}


async def test_every_identity_key_of_a_table_with_a_feed_includes_it_but_runs_and_quarantine(
        db: asyncpg.Connection) -> None:
    keys = await db.fetch(UNIQUE_KEYS, [*MOVED_TABLES, "runs", "quarantine"])
    without_feed = {r["relname"] for r in keys if "feed" not in r["columns"]}
    assert without_feed == {"runs", "quarantine"}


async def test_features_and_feature_history_are_hash_partitioned_by_feed_into_16(
        db: asyncpg.Connection) -> None:
    partitions = await db.fetch(
        "SELECT p.relname AS parent, pg_get_partkeydef(p.oid) AS key, count(*) AS partitions"
        " FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname IN ('features', 'feature_history') GROUP BY p.oid ORDER BY 1")
    assert [tuple(r) for r in partitions] == [("feature_history", "HASH (feed)", 16),
                                              ("features", "HASH (feed)", 16)]


async def test_migration_0013_moves_existing_rows_and_history_unchanged(
        db_at_0012: str) -> None:
    async with connection(db_at_0012) as conn:
        await conn.execute(ROWS_AT_0012)
        before = await snapshot(conn, MOVED_TABLES)
        freed_id = await conn.fetchval(
            "SELECT feature_id FROM zoningsync.feature_history WHERE op = 'retire'")
    assert await apply_migrations(db_at_0012) == ["0013_partitioned_features.sql"]
    async with connection(db_at_0012) as conn:
        assert await snapshot(conn, MOVED_TABLES) == before
        placed = await conn.fetch(
            "SELECT DISTINCT tableoid::regclass::text AS partition, feed"
            " FROM zoningsync.features ORDER BY feed")
        assert len({r["partition"] for r in placed}) == 2
        new_id = await conn.fetchval(
            "INSERT INTO zoningsync.features (feed, source_key, jurisdiction, kind, geom, h3,"
            " row_hash, first_run, last_run) SELECT feed, 'NEW', jurisdiction, kind, geom, h3,"
            " row_hash, first_run, last_run FROM zoningsync.features LIMIT 1 RETURNING id")
        assert new_id > freed_id


async def test_migration_0013_keeps_every_view_and_the_tables_columns_comments_and_grants(
        db_at_0012: str) -> None:
    async with connection(db_at_0012) as conn:
        views = [tuple(r) for r in await conn.fetch(VIEW_STATE)]
        tables = [tuple(r) for r in await conn.fetch(
            TABLE_STATE, ["features", "feature_history", "features_id_seq",
                          "feature_history_id_seq"])]
    await apply_migrations(db_at_0012)
    async with connection(db_at_0012) as conn:
        assert [tuple(r) for r in await conn.fetch(VIEW_STATE)] == views
        assert [tuple(r) for r in await conn.fetch(
            TABLE_STATE, ["features", "feature_history", "features_id_seq",
                          "feature_history_id_seq"])] == tables
    assert {v[0] for v in views} == set(VIEWS)
