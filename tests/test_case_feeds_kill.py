"""`kill -9` in the middle of a case run, then a rerun, ends as a clean run does."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.case_helpers import EXAMPLE, PORT_IN_EXAMPLE
from tests.test_cli_sync import ZONINGSYNC, zoningsync
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

FEED = "demo-county-cases/cases-html"
SLOW_PDF_MS = 2000  # each agenda PDF trickles out over two seconds: time to be killed
CASES_DIGEST = """
SELECT md5(string_agg(row(case_number, title, case_type, status, status_class, filed_at,
                          hearing_at, decided_at, from_zoning, to_zoning, acreage, address,
                          applicant, parcel_ids, detail_url, document_url, document_sha256,
                          pages, attrs, matched_parcel_ids, unmatched_parcel_ids,
                          match_method)::text, '|' ORDER BY case_number)),
       count(*)
FROM zoningsync.rezoning_cases
"""
COUNTS = {
    "history": "SELECT op, count(*) FROM zoningsync.case_history GROUP BY op ORDER BY op",
    "status_history": "SELECT field, count(*) FROM zoningsync.case_status_history"
                      " GROUP BY field ORDER BY field",
    "quarantine": "SELECT reason, source_key, count(*) FROM zoningsync.quarantine"
                  " GROUP BY 1, 2 ORDER BY 1, 2",
    "staged": "SELECT count(*) FROM zoningsync.staged_cases",
}


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(400, seed=5)) as running:
        yield running


async def state(conn: asyncpg.Connection) -> dict[str, Any]:
    found: dict[str, Any] = {"cases": tuple(await conn.fetchrow(CASES_DIGEST) or ())}
    for name, query in COUNTS.items():
        found[name] = [tuple(r) for r in await conn.fetch(query)]
    return found


async def test_kill_9_while_reading_agendas_then_rerun_gives_the_clean_result(
        db_url: str, db: asyncpg.Connection, cluster_url: str, tmp_path: Path,
        portal: RunningPortal) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "demo-county-cases.toml").write_text(
        EXAMPLE.read_text().replace(PORT_IN_EXAMPLE, portal.base_url))
    portal.behaviours.slow_pdf_ms = SLOW_PDF_MS
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, "sync", FEED, "--sources", str(sources),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    for _ in range(600):
        pdfs = await db.fetchval(
            "SELECT count(*) FROM zoningsync.documents WHERE url LIKE '%.pdf'")
        if pdfs >= 1:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert await db.fetchval("SELECT status FROM zoningsync.runs") == "running"
    assert await db.fetchval("SELECT count(*) FROM zoningsync.documents") > 1
    assert await db.fetchval("SELECT count(*) FROM zoningsync.cases") == 0
    portal.behaviours.slow_pdf_ms = 0

    code, out, err = await zoningsync(db_url, "sync", FEED, "--sources", str(sources),
                                      "--json")
    assert code == 0, err
    [summary] = json.loads(out)
    assert summary["status"] == "succeeded"
    assert summary["resumed"] == 1
    resumed = await state(db)

    clean_db = db_url.replace("/zs_t_", "/zs_clean_")
    clean_name = urlsplit(clean_db).path.lstrip("/")
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f"CREATE DATABASE {clean_name} TEMPLATE zs_template")
        code, out, err = await zoningsync(clean_db, "sync", FEED, "--sources", str(sources),
                                          "--json")
        assert code == 0, err
        [clean_summary] = json.loads(out)
        clean = await asyncpg.connect(clean_db)
        try:
            assert await state(clean) == resumed
        finally:
            await clean.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {clean_name} WITH (FORCE)")
        await admin.close()
    assert resumed["cases"][1] == len(portal.cases.expected())
    for count in ("inserted", "quarantined"):
        assert summary[count] == clean_summary[count], count
