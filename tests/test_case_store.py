"""The case store on a real PostGIS: staging, merge with history, documents, planner views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.portal_helpers import PARCEL_FIELDS, feed_config
from tests.test_sync import run
from zoningsync.cases.model import CaseRecord, DocumentQuarantine, StatusClass
from zoningsync.portal.county import County
from zoningsync.portal.server import run_portal
from zoningsync.store.cases import (
    case_from_content,
    case_from_row,
    clear_case_staging,
    document_state,
    merge_cases,
    plan_case_merge,
    save_document,
    stage_cases,
)
from zoningsync.store.runs import list_quarantine

JURISDICTION = "test-county"
CASES_FEED = f"{JURISDICTION}/cases"
PARCELS_FEED = f"{JURISDICTION}/parcels"
PDF = "http://127.0.0.1:9/agenda/2024-05.pdf"
SHA_A = "a" * 64
SHA_B = "b" * 64

PENDING = CaseRecord(
    case_number="Z-12-2024", title="Rezone 12 Oak St", case_type="rezoning",
    status="Under review", status_class=StatusClass.PENDING,
    filed_at=datetime(2024, 3, 1, tzinfo=UTC), hearing_at=datetime(2024, 5, 2, 18, tzinfo=UTC),
    from_zoning="R-4", to_zoning="CX-3", acreage=1.25, address="12 Oak St",
    applicant="Oak Holdings LLC", parcel_ids=("0000000001",),
    detail_url="http://127.0.0.1:9/cases/Z-12-2024", document_url=PDF, document_sha256=SHA_A,
    pages=(3, 4), attrs={"ward": 2, "council": "District B"},
)
OTHER = CaseRecord(case_number="Z-13-2024", title="Text amendment",
                   status="Approved", status_class=StatusClass.APPROVED)


async def add_feed(db: asyncpg.Connection, feed_id: str, kind: str) -> None:
    jurisdiction, feed = feed_id.split("/")
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ($1, $2, $3, $4, 'html', 'http://127.0.0.1:9/') ON CONFLICT DO NOTHING",
        feed_id, jurisdiction, feed, kind)


async def new_run(db: asyncpg.Connection, feed_id: str = CASES_FEED) -> int:
    await add_feed(db, feed_id, "cases" if feed_id.endswith("cases") else "parcels")
    return int(await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode) VALUES ($1, 'full') RETURNING id", feed_id))


async def sync_cases(db: asyncpg.Connection, cases: Sequence[CaseRecord], *,
                     complete: bool = True) -> tuple[int, Any]:
    """One case run: stage, merge, clear; the run id and the merge's counts."""
    run_id = await new_run(db)
    await stage_cases(db, run_id, cases)
    counts = await merge_cases(db, run_id, CASES_FEED, JURISDICTION, complete=complete)
    await clear_case_staging(db, run_id, CASES_FEED)
    return run_id, counts


async def count(db: asyncpg.Connection, table: str, where: str = "true") -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM zoningsync.{table} WHERE {where}"))


async def add_parcel(db: asyncpg.Connection, parcel_id: str | None, *, x: float,
                     address: str | None = None, jurisdiction: str = JURISDICTION) -> None:
    """A 1x1 parcel at (x, 0), stored as a parcel feed's merge would store it."""
    feed_id = f"{jurisdiction}/parcels"
    run_id = await new_run(db, feed_id)
    await db.execute(
        """INSERT INTO zoningsync.features (feed, source_key, jurisdiction, kind, parcel_id,
               address, geom, h3, row_hash, first_run, last_run)
           VALUES ($1, $2, $3, 'parcels', $4, $5,
               ST_Multi(ST_MakeEnvelope($6::float8, 0, $6::float8 + 1, 1, 4326)),
               '872a1072bffffff', '\\x00', $7, $7)""",
        feed_id, f"key-{x}", jurisdiction, parcel_id, address, x, run_id)


async def view_row(db: asyncpg.Connection, case_number: str,
                   view: str = "rezoning_cases") -> asyncpg.Record:
    row = await db.fetchrow(
        f"SELECT *, ST_Area(geom) AS area FROM zoningsync.{view} WHERE case_number = $1",
        case_number)
    assert row is not None
    return row


async def case_state(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetch("SELECT * FROM zoningsync.cases ORDER BY id")]


# -- staging and merge ---------------------------------------------------------------


async def test_a_merged_case_reads_back_as_the_record_staged(db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING])
    row = await db.fetchrow("SELECT * FROM zoningsync.cases WHERE case_number = $1",
                            PENDING.case_number)
    assert row is not None
    assert case_from_row(row) == PENDING
    assert bytes(row["row_hash"]) == PENDING.row_hash()
    assert (row["feed"], row["jurisdiction"]) == (CASES_FEED, JURISDICTION)


def test_a_case_reads_back_from_its_content() -> None:
    assert case_from_content(PENDING.content()) == PENDING


async def test_merging_unchanged_cases_again_writes_nothing(db: asyncpg.Connection) -> None:
    _, first = await sync_cases(db, [PENDING, OTHER])
    assert (first.inserted, first.updated, first.retired) == (2, 0, 0)
    before = await case_state(db)
    history = await count(db, "case_history")
    run_id, second = await sync_cases(db, [PENDING, OTHER])
    assert (second.inserted, second.updated, second.retired, second.unchanged) == (0, 0, 0, 2)
    assert await case_state(db) == before
    assert await count(db, "case_history") == history
    assert await count(db, "case_status_history") == 0
    assert await count(db, "cases", f"last_run = {run_id}") == 0


async def test_a_merge_adds_its_counts_to_its_run(db: asyncpg.Connection) -> None:
    await sync_cases(db, [OTHER])
    run_id, _ = await sync_cases(db, [replace(OTHER, title="Text amendment (revised)"), PENDING])
    row = await db.fetchrow("SELECT inserted, updated, retired FROM zoningsync.runs"
                            " WHERE id = $1", run_id)
    assert tuple(row) == (1, 1, 0)


async def test_a_case_staged_twice_in_a_run_keeps_its_later_reading(
        db: asyncpg.Connection) -> None:
    run_id = await new_run(db)
    await stage_cases(db, run_id, [PENDING])
    later = replace(PENDING, status="Scheduled for hearing")
    await stage_cases(db, run_id, [later])
    await stage_cases(db, run_id, [replace(later, title="dropped"), later])
    await merge_cases(db, run_id, CASES_FEED, JURISDICTION, complete=True)
    row = await db.fetchrow("SELECT * FROM zoningsync.cases")
    assert case_from_row(row) == later
    assert await count(db, "cases") == 1


async def test_a_status_change_is_one_status_history_row_with_its_run(
        db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING])
    run_id, counts = await sync_cases(db, [replace(PENDING, status="Approved",
                                                   status_class=StatusClass.APPROVED)])
    assert counts.updated == 1
    rows = await db.fetch("SELECT * FROM zoningsync.case_status_history")
    assert len(rows) == 1
    [row] = rows
    assert (row["run_id"], row["feed"], row["case_number"], row["field"]) == (
        run_id, CASES_FEED, PENDING.case_number, "status")
    assert (row["old_status"], row["new_status"]) == ("Under review", "Approved")
    assert (row["old_value"], row["new_value"]) == ("Under review", "Approved")


async def test_hearing_date_and_zoning_changes_are_recorded_field_by_field(
        db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING])
    moved = replace(PENDING, hearing_at=datetime(2024, 6, 6, 18, tzinfo=UTC),
                    from_zoning="R-6", to_zoning="CX-5")
    run_id, counts = await sync_cases(db, [moved])
    rows = await db.fetch("SELECT field, old_value, new_value, old_status, run_id"
                          " FROM zoningsync.case_status_history ORDER BY field")
    assert [tuple(r) for r in rows] == [
        ("from_zoning", "R-4", "R-6", None, run_id),
        ("hearing_at", "2024-05-02T18:00:00Z", "2024-06-06T18:00:00Z", None, run_id),
        ("to_zoning", "CX-3", "CX-5", None, run_id),
    ]
    assert counts.field_changes == 3


async def test_case_history_keeps_the_whole_version_an_update_replaced(
        db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING])
    before = await db.fetchrow("SELECT * FROM zoningsync.cases")
    run_id, _ = await sync_cases(db, [replace(PENDING, acreage=2.5, pages=(7,))])
    history = await db.fetchrow(
        "SELECT * FROM zoningsync.case_history WHERE op = 'update' AND run_id = $1", run_id)
    assert history["case_id"] == before["id"]
    for column, value in dict(before).items():
        if column not in ("id", "feed", "case_number"):
            assert history[column] == value, column
    assert bytes(history["new_row_hash"]) == replace(PENDING, acreage=2.5, pages=(7,)).row_hash()


async def test_an_insert_is_in_case_history_with_its_run(db: asyncpg.Connection) -> None:
    run_id, _ = await sync_cases(db, [PENDING])
    rows = await db.fetch("SELECT op, run_id, case_number, new_row_hash, status"
                          " FROM zoningsync.case_history")
    assert [tuple(r) for r in rows] == [
        ("insert", run_id, PENDING.case_number, PENDING.row_hash(), None)]


async def test_an_incomplete_read_retires_nothing(db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING, OTHER])
    _, counts = await sync_cases(db, [OTHER], complete=False)
    assert counts.retired == 0
    assert await count(db, "cases") == 2
    assert await count(db, "case_history", "op = 'retire'") == 0


async def test_a_complete_read_retires_the_missing_case_with_its_history(
        db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING, OTHER])
    await sync_cases(db, [replace(PENDING, status="Deferred")], complete=False)
    before = await db.fetchrow("SELECT * FROM zoningsync.cases WHERE case_number = $1",
                               PENDING.case_number)
    run_id, counts = await sync_cases(db, [OTHER])
    assert counts.retired == 1
    assert [r["case_number"] for r in await db.fetch("SELECT case_number FROM zoningsync.cases")
            ] == [OTHER.case_number]
    retired = await db.fetchrow("SELECT * FROM zoningsync.case_history WHERE op = 'retire'")
    assert retired["run_id"] == run_id
    assert retired["case_id"] == before["id"]
    assert case_from_row(retired) == replace(PENDING, status="Deferred")
    assert await count(db, "case_status_history", f"case_number = '{PENDING.case_number}'") == 1


async def test_the_plan_counts_what_the_merge_would_write(db: asyncpg.Connection) -> None:
    await sync_cases(db, [PENDING, OTHER, replace(OTHER, case_number="Z-14-2024")])
    run_id = await new_run(db)
    await stage_cases(db, run_id, [replace(PENDING, status="Approved"),
                                   replace(OTHER, case_number="Z-15-2024"),
                                   replace(OTHER, case_number="Z-14-2024")])
    plan = await plan_case_merge(db, run_id, CASES_FEED, complete=True)
    assert (plan.inserting, plan.updating, plan.retiring, plan.unchanged, plan.current) == (
        1, 1, 1, 1, 3)
    assert plan.retire_fraction == pytest.approx(1 / 3)
    assert plan.retires_too_many(0.2)
    assert not plan.retires_too_many(0.5)
    incomplete = await plan_case_merge(db, run_id, CASES_FEED, complete=False)
    assert incomplete.retiring == 0
    assert await count(db, "case_history") == 3  # planning wrote nothing


async def test_a_first_read_retires_nothing_and_trips_no_guard(db: asyncpg.Connection) -> None:
    run_id = await new_run(db)
    await stage_cases(db, run_id, [PENDING])
    plan = await plan_case_merge(db, run_id, CASES_FEED, complete=True)
    assert (plan.inserting, plan.retiring, plan.current) == (1, 0, 0)
    assert not plan.retires_too_many(0.2)


async def test_clearing_a_runs_staging_leaves_other_runs_staged(db: asyncpg.Connection) -> None:
    first, second = await new_run(db), await new_run(db)
    await stage_cases(db, first, [PENDING])
    await stage_cases(db, second, [PENDING, OTHER])
    await clear_case_staging(db, first, CASES_FEED)
    assert await count(db, "staged_cases", f"run_id = {first}") == 0
    assert await count(db, "staged_cases", f"run_id = {second}") == 2


async def test_clearing_a_runs_staging_drops_what_closed_runs_of_the_feed_left(
        db: asyncpg.Connection) -> None:
    held, current = await new_run(db), await new_run(db)
    await stage_cases(db, held, [PENDING])
    await db.execute("UPDATE zoningsync.runs SET status = 'held', phase = 'done' WHERE id = $1",
                     held)
    await clear_case_staging(db, current, CASES_FEED)
    assert await count(db, "staged_cases") == 0


# -- planner views -------------------------------------------------------------------


@pytest.mark.parametrize("named", ["0000000001", "0000-000-001", "0000.000.001", " 0000 000001 "])
async def test_rezoning_cases_match_parcel_ids_whatever_their_formatting(
        db: asyncpg.Connection, named: str) -> None:
    await add_parcel(db, "0000000001", x=0)
    await sync_cases(db, [replace(PENDING, parcel_ids=(named,))])
    row = await view_row(db, PENDING.case_number)
    assert row["match_method"] == "parcel_id"
    assert row["matched_parcel_ids"] == ["0000000001"]
    assert row["unmatched_parcel_ids"] == []
    assert row["area"] == pytest.approx(1.0)


async def test_parcel_ids_match_without_regard_to_letter_case(db: asyncpg.Connection) -> None:
    await add_parcel(db, "12-ab-3", x=0)
    await sync_cases(db, [replace(PENDING, parcel_ids=("12AB3",))])
    assert (await view_row(db, PENDING.case_number))["matched_parcel_ids"] == ["12-ab-3"]


async def test_rezoning_cases_keep_the_ids_that_match_no_parcel(db: asyncpg.Connection) -> None:
    await add_parcel(db, "0000000001", x=0)
    await sync_cases(db, [replace(PENDING, parcel_ids=("NOPE-9", "0000000001", "GONE-1"))])
    row = await view_row(db, PENDING.case_number)
    assert row["parcel_ids"] == ["NOPE-9", "0000000001", "GONE-1"]
    assert row["matched_parcel_ids"] == ["0000000001"]
    assert row["unmatched_parcel_ids"] == ["NOPE-9", "GONE-1"]
    assert row["match_method"] == "parcel_id"


async def test_the_geometry_is_the_union_of_the_matched_parcels(db: asyncpg.Connection) -> None:
    await add_parcel(db, "A-1", x=0)
    await add_parcel(db, "A-2", x=1)
    await add_parcel(db, "A-3", x=5)
    await sync_cases(db, [replace(PENDING, parcel_ids=("A-1", "A-2", "A-3"))])
    row = await db.fetchrow(
        "SELECT ST_Area(geom) AS area, ST_NumGeometries(geom) AS parts, GeometryType(geom) AS t,"
        " ST_SRID(geom) AS srid, matched_parcel_ids FROM zoningsync.rezoning_cases")
    assert (row["area"], row["parts"], row["t"], row["srid"]) == (3.0, 2, "MULTIPOLYGON", 4326)
    assert row["matched_parcel_ids"] == ["A-1", "A-2", "A-3"]


@pytest.mark.parametrize(("case_address", "parcel_address"), [
    ("12 Oak Street", "12 OAK ST"),
    ("12 North Oak St", "12 N OAK ST"),
    ("12 N. Oak St.", "12 NORTH OAK STREET"),
    ("12 oak st, apt 4b", "12 OAK ST"),
    ("12 Oak St #4", "12 Oak St Unit 7"),
    ("12 O'Neil Avenue", "12 ONEIL AVE"),
    ("1200 Southwest Parkway Boulevard", "1200 SW PKWY BLVD"),
    ("12  Oak   Dr", "12 OAK DRIVE  "),
])
async def test_rezoning_cases_match_by_address_when_they_name_no_parcel_id(
        db: asyncpg.Connection, case_address: str, parcel_address: str) -> None:
    await add_parcel(db, "0000000001", x=0, address=parcel_address)
    await add_parcel(db, "0000000002", x=3, address="14 Oak St")
    await sync_cases(db, [replace(PENDING, parcel_ids=(), address=case_address)])
    row = await view_row(db, PENDING.case_number)
    assert row["match_method"] == "address"
    assert row["matched_parcel_ids"] == ["0000000001"]
    assert row["unmatched_parcel_ids"] == []
    assert row["area"] == pytest.approx(1.0)


async def test_a_case_naming_parcel_ids_is_not_matched_by_address(
        db: asyncpg.Connection) -> None:
    await add_parcel(db, "0000000001", x=0, address="12 Oak St")
    await sync_cases(db, [replace(PENDING, parcel_ids=("9999",), address="12 Oak St")])
    row = await view_row(db, PENDING.case_number)
    assert (row["match_method"], row["geom"], row["matched_parcel_ids"],
            row["unmatched_parcel_ids"]) == ("none", None, [], ["9999"])


async def test_a_case_matching_nothing_has_no_geometry(db: asyncpg.Connection) -> None:
    await add_parcel(db, "0000000001", x=0, address="12 Oak St")
    await sync_cases(db, [replace(PENDING, parcel_ids=(), address="99 Elm St"),
                          replace(OTHER, parcel_ids=(), address=None)])
    for case_number in (PENDING.case_number, OTHER.case_number):
        row = await view_row(db, case_number)
        assert (row["match_method"], row["geom"], row["matched_parcel_ids"]) == ("none", None, [])


async def test_parcels_of_another_jurisdiction_are_not_matched(db: asyncpg.Connection) -> None:
    await add_parcel(db, "0000000001", x=0, address="12 Oak St", jurisdiction="elsewhere")
    await sync_cases(db, [PENDING, replace(OTHER, parcel_ids=(), address="12 Oak St")])
    assert {r["match_method"] for r in await db.fetch(
        "SELECT match_method FROM zoningsync.rezoning_cases")} == {"none"}


async def test_rezoning_cases_has_a_column_for_every_field_of_a_case(
        db: asyncpg.Connection) -> None:
    await add_parcel(db, "0000000001", x=0)
    await sync_cases(db, [PENDING])
    row = await view_row(db, PENDING.case_number)
    assert case_from_row(row) == PENDING
    assert (row["jurisdiction"], row["feed"], row["status_class"]) == (
        JURISDICTION, CASES_FEED, "pending")
    assert row["updated_at"] is not None


async def test_pending_cases_are_the_pending_rows_of_rezoning_cases(
        db: asyncpg.Connection) -> None:
    await add_parcel(db, "0000000001", x=0)
    await sync_cases(db, [PENDING, OTHER, replace(PENDING, case_number="Z-20-2024",
                                                  parcel_ids=("X",))])
    columns = ("case_number, geom, matched_parcel_ids, unmatched_parcel_ids, match_method,"
               " attrs, pages")
    pending = await db.fetch(f"SELECT {columns} FROM zoningsync.pending_cases ORDER BY 1")
    expected = await db.fetch(f"SELECT {columns} FROM zoningsync.rezoning_cases"
                              " WHERE status_class = 'pending' ORDER BY 1")
    assert [tuple(r) for r in pending] == [tuple(r) for r in expected]
    assert [r["case_number"] for r in pending] == ["Z-12-2024", "Z-20-2024"]


async def test_pending_cases_keeps_its_columns_first(db: asyncpg.Connection) -> None:
    names = [r["column_name"] for r in await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'zoningsync'"
        " AND table_name = 'pending_cases' ORDER BY ordinal_position")]
    assert names[:14] == ["id", "jurisdiction", "feed", "case_number", "title", "status",
                          "filed_at", "hearing_at", "from_zoning", "to_zoning", "parcel_ids",
                          "address", "document_url", "updated_at"]


async def test_matching_uses_the_parcel_expression_indexes(db: asyncpg.Connection) -> None:
    run_id = await new_run(db, PARCELS_FEED)
    await db.execute(
        """INSERT INTO zoningsync.features (feed, source_key, jurisdiction, kind, parcel_id,
               address, geom, h3, row_hash, first_run, last_run)
           SELECT $1, n::text, $2, 'parcels', lpad(n::text, 10, '0'), n || ' Oak Street',
               ST_Multi(ST_MakeEnvelope(n, 0, n + 1, 1, 4326)), '872a1072bffffff', '\\x00',
               $3, $3
           FROM generate_series(1, 20000) AS n""", PARCELS_FEED, JURISDICTION, run_id)
    await db.execute("ANALYZE zoningsync.features")
    await sync_cases(db, [PENDING, replace(OTHER, parcel_ids=(), address="17 oak st")])
    plan = "\n".join(r[0] for r in await db.fetch(
        "EXPLAIN SELECT * FROM zoningsync.rezoning_cases"))
    # features is partitioned by feed (0013): the partition holding the parcels is
    # read through its own copies of the expression indexes.
    for index in ("features_parcel_id_norm_idx", "features_address_norm_idx"):
        copies = {r[0] for r in await db.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = $1::regclass", f"zoningsync.{index}")}
        assert any(f"Index Scan using {name} " in plan for name in copies), index
    [partition] = [r[0] for r in await db.fetch(
        "SELECT DISTINCT tableoid::regclass::text FROM zoningsync.features")]
    assert f"Seq Scan on {partition} " not in plan
    rows = await db.fetch("SELECT case_number, match_method, matched_parcel_ids"
                          " FROM zoningsync.rezoning_cases ORDER BY 1")
    assert [tuple(r) for r in rows] == [("Z-12-2024", "parcel_id", ["0000000001"]),
                                        ("Z-13-2024", "address", ["0000000017"])]


# -- documents -----------------------------------------------------------------------


async def save(db: asyncpg.Connection, run_id: int, *, sha256: str = SHA_A,
               etag: str | None = '"v1"', cases: Sequence[CaseRecord] = (PENDING,),
               quarantine: tuple[str, str] | None = None) -> None:
    await save_document(db, CASES_FEED, PDF, run_id=run_id, etag=etag,
                        last_modified="Wed, 01 May 2024 10:00:00 GMT", sha256=sha256,
                        size=52_113, content_type="application/pdf", cases=cases,
                        quarantine=quarantine)


async def document_row(db: asyncpg.Connection) -> tuple[Any, ...]:
    return tuple(await db.fetchrow("SELECT * FROM zoningsync.documents"))


async def test_a_document_reads_back_as_saved(db: asyncpg.Connection) -> None:
    run_id = await new_run(db)
    assert await document_state(db, CASES_FEED, PDF) is None
    await save(db, run_id, cases=(PENDING, OTHER))
    state = await document_state(db, CASES_FEED, PDF)
    assert state is not None
    assert (state.etag, state.last_modified, state.sha256, state.size, state.content_type) == (
        '"v1"', "Wed, 01 May 2024 10:00:00 GMT", SHA_A, 52_113, "application/pdf")
    assert state.cases == (PENDING, OTHER)
    assert state.quarantine is None
    assert state.last_run == run_id
    assert state.changed_at is not None
    assert state.holds(SHA_A) and not state.holds(SHA_B)


async def test_an_unchanged_document_writes_nothing(db: asyncpg.Connection) -> None:
    await save(db, await new_run(db))
    before = await document_row(db)
    await save(db, await new_run(db))
    assert await document_row(db) == before


async def test_a_new_etag_for_the_same_content_keeps_its_changed_time(
        db: asyncpg.Connection) -> None:
    await save(db, await new_run(db))
    first = await document_state(db, CASES_FEED, PDF)
    await save(db, await new_run(db), etag='"v2"')
    second = await document_state(db, CASES_FEED, PDF)
    assert first is not None and second is not None
    assert second.etag == '"v2"'
    assert second.changed_at == first.changed_at
    assert second.cases == first.cases


async def test_changed_content_replaces_the_cases_read_from_it(db: asyncpg.Connection) -> None:
    await save(db, await new_run(db))
    later = replace(PENDING, status="Approved", document_sha256=SHA_B)
    await save(db, await new_run(db), sha256=SHA_B, cases=(later,))
    state = await document_state(db, CASES_FEED, PDF)
    assert state is not None
    assert (state.sha256, state.cases) == (SHA_B, (later,))


async def test_an_unchanged_documents_cases_carry_forward_into_the_next_run(
        db: asyncpg.Connection) -> None:
    run_id = await new_run(db)
    await save(db, run_id, cases=(PENDING, OTHER))
    await stage_cases(db, run_id, [PENDING, OTHER])
    await merge_cases(db, run_id, CASES_FEED, JURISDICTION, complete=True)
    later = await new_run(db)
    state = await document_state(db, CASES_FEED, PDF)
    assert state is not None and state.holds(SHA_A)
    await stage_cases(db, later, state.cases)  # not parsed again: carried forward
    counts = await merge_cases(db, later, CASES_FEED, JURISDICTION, complete=True)
    assert (counts.inserted, counts.updated, counts.retired, counts.unchanged) == (0, 0, 0, 2)


async def test_one_url_keeps_a_state_per_feed(db: asyncpg.Connection) -> None:
    run_id = await new_run(db)
    await save(db, run_id)
    other_feed = "other-county/cases"
    other_run = await new_run(db, other_feed)
    await save_document(db, other_feed, PDF, run_id=other_run, etag=None, last_modified=None,
                        sha256=SHA_B, size=1, content_type="application/pdf", cases=(),
                        quarantine=None)
    mine, theirs = (await document_state(db, CASES_FEED, PDF),
                    await document_state(db, other_feed, PDF))
    assert mine is not None and theirs is not None
    assert (mine.sha256, theirs.sha256) == (SHA_A, SHA_B)


async def test_a_quarantined_document_is_a_quarantine_row_keyed_by_its_url(
        db: asyncpg.Connection) -> None:
    run_id = await new_run(db)
    await save(db, run_id, cases=(), quarantine=("no_text_layer", "scanned pages, no text"))
    [row] = await db.fetch("SELECT * FROM zoningsync.quarantine")
    assert (row["feed"], row["run_id"], row["source_key"], row["reason"], row["detail"]) == (
        CASES_FEED, run_id, PDF, "no_text_layer", "scanned pages, no text")
    state = await document_state(db, CASES_FEED, PDF)
    assert state is not None and state.quarantine is not None
    assert (state.quarantine.reason, state.quarantine.quarantine_id) == (
        DocumentQuarantine.NO_TEXT_LAYER, row["id"])
    assert state.cases == ()


async def test_an_unchanged_quarantined_document_is_not_quarantined_twice_and_stays_listed(
        db: asyncpg.Connection) -> None:
    first = await new_run(db)
    await save(db, first, cases=(), quarantine=("encrypted", "the PDF asks for a password"))
    await db.execute("UPDATE zoningsync.runs SET status = 'succeeded' WHERE id = $1", first)
    before = await document_row(db)
    for _ in range(2):
        later = await new_run(db)
        await save(db, later, cases=(), quarantine=("encrypted", "the PDF asks for a password"))
        await db.execute("UPDATE zoningsync.runs SET status = 'succeeded' WHERE id = $1", later)
    assert await count(db, "quarantine") == 1
    assert await document_row(db) == before
    listed = await list_quarantine(db, CASES_FEED, all_runs=False, limit=100)
    assert [(q["source_key"], q["reason"], q["run_id"]) for q in listed] == [
        (PDF, "encrypted", first)]


async def test_a_document_that_gives_cases_again_leaves_the_quarantine_list(
        db: asyncpg.Connection) -> None:
    first = await new_run(db)
    await save(db, first, cases=(), quarantine=("malformed", "no xref table"))
    await db.execute("UPDATE zoningsync.runs SET status = 'succeeded' WHERE id = $1", first)
    later = await new_run(db)
    await save(db, later, sha256=SHA_B)
    await db.execute("UPDATE zoningsync.runs SET status = 'succeeded' WHERE id = $1", later)
    assert await list_quarantine(db, CASES_FEED, all_runs=False, limit=100) == []
    state = await document_state(db, CASES_FEED, PDF)
    assert state is not None and state.quarantine is None


async def test_changed_content_quarantined_again_is_a_new_quarantine_row(
        db: asyncpg.Connection) -> None:
    await save(db, await new_run(db), cases=(), quarantine=("no_match", "no case table"))
    await save(db, await new_run(db), sha256=SHA_B, cases=(),
               quarantine=("no_match", "no case table"))
    assert await count(db, "quarantine") == 2
    state = await document_state(db, CASES_FEED, PDF)
    assert state is not None and state.quarantine is not None
    assert state.quarantine.quarantine_id == await db.fetchval(
        "SELECT max(id) FROM zoningsync.quarantine")


async def test_a_quarantine_reason_must_be_a_document_code(db: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="null_geometry"):
        await save(db, await new_run(db), cases=(), quarantine=("null_geometry", "?"))
    assert await count(db, "documents") == 0


async def test_a_quarantine_detail_is_redacted(db: asyncpg.Connection) -> None:
    await save(db, await new_run(db), cases=(),
               quarantine=("malformed", "fetched ?token=abcdef123456 gave garbage"))
    detail = await db.fetchval("SELECT detail FROM zoningsync.quarantine")
    assert "abcdef123456" not in detail


# -- parcel addresses through the ArcGIS path ------------------------------------------


async def test_the_parcels_view_carries_the_address_an_arcgis_feed_maps(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with run_portal(County(300, seed=5)) as portal:
        feed = feed_config(tmp_path, portal.layer_url(0),
                           fields=PARCEL_FIELDS + '\naddress = "SITE_ADDRESS"')
        summary = await run(db_url, tmp_path, feed)
    assert summary["inserted"] > 0
    rows = await db.fetch("SELECT address, attrs FROM zoningsync.parcels")
    assert rows and all(r["address"] for r in rows)
    assert all("SITE_ADDRESS" not in r["attrs"] for r in rows)
    assert await count(db, "features", "address IS NULL") == 0


async def test_addresses_survive_a_merge_of_changes_and_stay_in_history(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with run_portal(County(300, seed=5)) as portal:
        feed = feed_config(tmp_path, portal.layer_url(0),
                           fields=PARCEL_FIELDS + '\naddress = "SITE_ADDRESS"')
        await run(db_url, tmp_path, feed)
        portal.county.publish(0.2, seed=3)
        summary = await run(db_url, tmp_path, feed, full=True)
    assert summary["updated"] > 0 and summary["inserted"] > 0 and summary["retired"] > 0
    assert await count(db, "features", "address IS NULL") == 0
    assert await count(db, "feature_history", "op <> 'insert' AND address IS NULL") == 0

