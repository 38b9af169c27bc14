"""`zoningsync demo`, the README's first command, against the test database."""

from __future__ import annotations

import asyncpg

from tests.test_cli_sync import zoningsync


async def test_the_demo_syncs_a_changed_county_and_says_how_to_connect(
        db_url: str, db: asyncpg.Connection) -> None:
    code, out, err = await zoningsync(db_url, "demo", "--parcels", "400")
    assert code == 0, err
    assert "Demo runs" in out
    assert 'psql "' in out
    modes = [r["mode"] for r in await db.fetch("SELECT mode FROM zoningsync.runs ORDER BY id")]
    assert modes == ["full", "full", "full", "incremental", "full"]
    assert await db.fetchval("SELECT count(*) FROM zoningsync.zoning_changes") > 0


async def test_the_demo_ingests_the_countys_cases_and_answers_a_planners_query(
        db_url: str, db: asyncpg.Connection) -> None:
    code, out, err = await zoningsync(db_url, "demo", "--parcels", "400")
    assert code == 0, err
    cases = await db.fetchval(
        "SELECT count(*) FROM zoningsync.rezoning_cases WHERE jurisdiction = 'demo-county'")
    assert cases > 0
    assert await db.fetchval("SELECT count(*) FROM zoningsync.case_status_history") > 0
    methods = {r["match_method"] for r in await db.fetch(
        "SELECT DISTINCT match_method FROM zoningsync.rezoning_cases")}
    assert {"parcel_id", "address"} <= methods
    assert "FROM zoningsync.pending_cases c" in out
    answer = out.split("Its answer", 1)[1]
    pending = await db.fetch(
        "SELECT case_number FROM zoningsync.pending_cases WHERE cardinality(matched_parcel_ids)"
        " > 0")
    assert pending and any(r["case_number"] in answer for r in pending)


async def test_a_second_demo_reads_the_restarted_portal_in_full(
        db_url: str, db: asyncpg.Connection) -> None:
    for _ in range(2):
        code, _, err = await zoningsync(db_url, "demo", "--parcels", "400")
        assert code == 0, err
    modes = [r["mode"] for r in await db.fetch("SELECT mode FROM zoningsync.runs ORDER BY id")]
    assert modes == ["full", "full", "full", "incremental", "full"] * 2
    assert await db.fetchval(
        "SELECT count(*) FROM zoningsync.runs WHERE status <> 'succeeded'") == 0
