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
    assert modes == ["full", "full", "incremental"]
    assert await db.fetchval("SELECT count(*) FROM zoningsync.zoning_changes") > 0


async def test_a_second_demo_reads_the_restarted_portal_in_full(
        db_url: str, db: asyncpg.Connection) -> None:
    for _ in range(2):
        code, _, err = await zoningsync(db_url, "demo", "--parcels", "400")
        assert code == 0, err
    modes = [r["mode"] for r in await db.fetch("SELECT mode FROM zoningsync.runs ORDER BY id")]
    assert modes == ["full", "full", "incremental"] * 2
    assert await db.fetchval(
        "SELECT count(*) FROM zoningsync.runs WHERE status <> 'succeeded'") == 0
