"""Case feeds through the `zoningsync` command: quarantined documents, warnings, counts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import EXAMPLE, PORT_IN_EXAMPLE
from tests.test_cli_sync import zoningsync
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

FEED = "demo-county-cases/agenda-index"
# What the agenda index's bad PDFs must each be quarantined as (the hearing
# schedule is a table, which the index's prose pattern does not read).
REASONS = {"scanned-agenda.pdf": "no_text_layer", "council-agenda.pdf": "encrypted",
           "commission-minutes.pdf": "malformed", "missing.pdf": "not_pdf",
           "hearing-schedule.pdf": "no_match"}


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


@pytest.fixture
def sources(tmp_path: Path, portal: RunningPortal) -> str:
    directory = tmp_path / "sources"
    directory.mkdir()
    (directory / "demo-county-cases.toml").write_text(
        EXAMPLE.read_text().replace(PORT_IN_EXAMPLE, portal.base_url))
    return str(directory)


async def sync_json(db_url: str, sources: str) -> dict[str, object]:
    code, out, err = await zoningsync(db_url, "sync", FEED, "--sources", sources, "--json")
    assert code == 0, err  # quarantined documents alone do not fail a run
    [summary] = json.loads(out)
    assert isinstance(summary, dict)
    return summary


async def listed(db_url: str) -> dict[str, str]:
    code, out, err = await zoningsync(db_url, "quarantine", "list", "--feed", FEED, "--json")
    assert code == 0, err
    return {row["source_key"].rsplit("/", 1)[1]: row["reason"] for row in json.loads(out)}


async def test_each_bad_pdf_is_counted_once_listed_and_a_no_match_is_a_warning(
        db_url: str, db: asyncpg.Connection, sources: str) -> None:
    summary = await sync_json(db_url, sources)
    assert summary["quarantined"] == len(REASONS)
    assert await listed(db_url) == REASONS
    warnings = await db.fetchval("SELECT warnings FROM zoningsync.runs WHERE id = $1",
                                 summary["id"])
    assert [w for w in warnings if "no case found" in w] == [
        w for w in warnings if "hearing-schedule.pdf" in w]
    assert any("hearing-schedule.pdf" in w for w in warnings)


async def test_unchanged_quarantined_pdfs_stay_listed_and_are_not_counted_again(
        db_url: str, db: asyncpg.Connection, sources: str) -> None:
    first = await sync_json(db_url, sources)
    again = await sync_json(db_url, sources)
    assert again["quarantined"] == 0
    assert await listed(db_url) == REASONS
    assert await db.fetchval("SELECT count(*) FROM zoningsync.quarantine") == len(REASONS)
    assert {r["run_id"] for r in await db.fetch("SELECT run_id FROM zoningsync.quarantine")
            } == {first["id"]}
