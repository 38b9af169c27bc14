"""Roles: planners read views only; the daemon writes tables."""

from __future__ import annotations

import asyncpg
import pytest

VIEWS = ("parcels", "zoning_districts", "zoning_changes_recent", "pending_cases",
         "parcel_history", "rezoning_cases")
BASE_TABLES = ("features", "feature_history", "feeds", "runs", "quarantine", "cases",
               "case_history", "case_status_history", "staged_cases", "documents", "schedules")


@pytest.mark.parametrize("view", VIEWS)
async def test_reader_role_can_read_every_planner_view(db: asyncpg.Connection, view: str) -> None:
    await db.execute("SET ROLE zoningsync_reader")
    assert await db.fetch(f"SELECT * FROM zoningsync.{view} LIMIT 1") == []


@pytest.mark.parametrize("table", BASE_TABLES)
async def test_reader_role_cannot_read_base_tables(db: asyncpg.Connection, table: str) -> None:
    await db.execute("SET ROLE zoningsync_reader")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.fetch(f"SELECT * FROM zoningsync.{table} LIMIT 1")


async def test_reader_role_cannot_write(db: asyncpg.Connection) -> None:
    await db.execute("SET ROLE zoningsync_reader")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute(
            "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
            " VALUES ('x/y', 'x', 'y', 'parcels', 'arcgis', 'http://127.0.0.1/')")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("DELETE FROM zoningsync.parcels")


async def test_writer_role_can_write_feeds_and_runs(db: asyncpg.Connection) -> None:
    await db.execute("SET ROLE zoningsync_writer")
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ('x/y', 'x', 'y', 'parcels', 'arcgis', 'http://127.0.0.1/')")
    run_id = await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode) VALUES ('x/y', 'full') RETURNING id")
    assert run_id is not None


async def test_parcels_view_has_one_row_per_current_parcel(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ('j/p', 'j', 'p', 'parcels', 'arcgis', 'http://127.0.0.1/')")
    run_id = await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode) VALUES ('j/p', 'full') RETURNING id")
    for key in ("A", "B"):
        await db.execute(
            """INSERT INTO zoningsync.features (feed, source_key, jurisdiction, kind, parcel_id,
                   zoning_code, geom, h3, row_hash, first_run, last_run)
               VALUES ('j/p', $1, 'j', 'parcels', $1, 'R-4',
                   ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)), '872a1072bffffff', '\\x00',
                   $2, $2)""", key, run_id)
    rows = await db.fetch("SELECT parcel_id, zoning_code FROM zoningsync.parcels ORDER BY 1")
    assert [tuple(r) for r in rows] == [("A", "R-4"), ("B", "R-4")]
    columns = {r["column_name"] for r in await db.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'zoningsync' AND table_name = 'parcels'")}
    assert {"jurisdiction", "feed", "parcel_id", "zoning_code", "zoning_desc", "attrs", "geom",
            "h3", "updated_at"} <= columns


BOX = "ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326))"


async def test_parcel_history_gives_the_reader_each_change_with_zoning_before_and_after(
        db: asyncpg.Connection) -> None:
    for feed, kind in (("j/p", "parcels"), ("j/z", "zoning_districts")):
        await db.execute(
            "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
            " VALUES ($1, 'j', $2, $3, 'arcgis', 'http://127.0.0.1/')", feed, feed[2:], kind)
    first, second = [await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode) VALUES ('j/p', 'full') RETURNING id")
        for _ in range(2)]
    history = (
        (first, "insert", "j/p", "A", None, None), (first, "insert", "j/p", "B", None, None),
        (first, "insert", "j/z", "Z", None, None),
        (second, "update", "j/p", "A", "A", "R-4"), (second, "retire", "j/p", "B", "B", "R-4"))
    for run_id, op, feed, key, parcel_id, code in history:
        await db.execute(
            f"""INSERT INTO zoningsync.feature_history (run_id, op, feed, source_key, parcel_id,
                   zoning_code, geom) VALUES ($1, $2, $3, $4, $5, $6,
                   CASE WHEN $6::text IS NULL THEN NULL ELSE {BOX} END)""",
            run_id, op, feed, key, parcel_id, code)
    await db.execute(
        f"""INSERT INTO zoningsync.features (feed, source_key, jurisdiction, kind, parcel_id,
               zoning_code, geom, h3, row_hash, first_run, last_run)
           VALUES ('j/p', 'A', 'j', 'parcels', 'A', 'C-2', {BOX}, '872a1072bffffff', '\\x00',
               $1, $2)""", first, second)
    await db.execute("SET ROLE zoningsync_reader")
    rows = await db.fetch(
        "SELECT jurisdiction, source_key, parcel_id, op, zoning_before, zoning_after,"
        " geom_before IS NOT NULL AS had_geom, run_id FROM zoningsync.parcel_history"
        " ORDER BY source_key, run_id")
    assert [tuple(r) for r in rows] == [
        ("j", "A", "A", "insert", None, "R-4", False, first),
        ("j", "A", "A", "update", "R-4", "C-2", True, second),
        ("j", "B", "B", "insert", None, "R-4", False, first),
        ("j", "B", "B", "retire", "R-4", None, True, second),
    ]


async def test_writer_role_can_stage_merge_and_record_cases(db: asyncpg.Connection) -> None:
    from zoningsync.cases.model import CaseRecord
    from zoningsync.store.cases import clear_case_staging, merge_cases, save_document, stage_cases

    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ('j/c', 'j', 'c', 'cases', 'html', 'http://127.0.0.1/')")
    await db.execute("SET ROLE zoningsync_writer")
    run_id = await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode) VALUES ('j/c', 'full') RETURNING id")
    await stage_cases(db, run_id, [CaseRecord("Z-1")])
    counts = await merge_cases(db, run_id, "j/c", "j", complete=True)
    await save_document(db, "j/c", "http://127.0.0.1/a.pdf", run_id=run_id, etag=None,
                        last_modified=None, sha256="0" * 64, size=1, content_type=None,
                        cases=(), quarantine=("no_match", "no case table"))
    await clear_case_staging(db, run_id, "j/c")
    assert counts.inserted == 1
    assert await db.fetch("SELECT * FROM zoningsync.rezoning_cases") != []


async def test_reader_role_sees_none_of_the_audit_log(db: asyncpg.Connection) -> None:
    await db.execute("SET ROLE zoningsync_reader")
    for table in ("admin_actions", "checkpoint_history"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.fetch(f"SELECT * FROM zoningsync.{table} LIMIT 1")


async def test_writer_role_records_admin_actions_but_cannot_delete_or_change_them(
        db: asyncpg.Connection) -> None:
    from zoningsync.store.audit import record_action

    await db.execute("SET ROLE zoningsync_writer")
    await record_action(db, "pause", "j/p", reason="test", outcome="done", detail="paused j/p")
    assert await db.fetchval("SELECT count(*) FROM zoningsync.admin_actions") == 1
    for statement in ("DELETE FROM zoningsync.admin_actions",
                      "UPDATE zoningsync.admin_actions SET outcome = 'refused'",
                      "TRUNCATE zoningsync.admin_actions"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(statement)


async def test_admin_role_cannot_delete_admin_actions_either(db: asyncpg.Connection) -> None:
    await db.execute("SET ROLE zoningsync_admin")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("DELETE FROM zoningsync.admin_actions")
