"""The `zoningsync` command in a subprocess: exit codes, JSON output, kill -9 and resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

ZONINGSYNC = [sys.executable, "-m", "zoningsync"]


async def zoningsync(db_url: str, *args: str, env: dict[str, str] | None = None
                     ) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(2000, seed=21)) as running:
        yield running


async def features(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await db.fetch("SELECT source_key, row_hash, h3, zoning_code FROM "
                          "zoningsync.features ORDER BY source_key")
    return [tuple(r) for r in rows]


async def test_sync_prints_a_json_summary_and_exits_zero(db_url: str, tmp_path: Path,
                                                         portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    code, out, err = await zoningsync(db_url, "sync", "test-county/parcels", "--sources",
                                      str(tmp_path / "sources"), "--json")
    assert code == 0, err
    [summary] = json.loads(out)
    assert summary["status"] == "succeeded"
    assert summary["fetched"] == 2000
    for line in err.strip().splitlines():  # logs are JSON lines on stderr when not a TTY
        json.loads(line)
    code, out, _ = await zoningsync(db_url, "runs", "--json")
    assert code == 0 and json.loads(out)[0]["id"] == summary["id"]
    code, out, _ = await zoningsync(db_url, "quarantine", "list", "--json")
    assert code == 0 and isinstance(json.loads(out), list)


async def test_an_unknown_jurisdiction_exits_two_with_one_line(db_url: str, tmp_path: Path,
                                                              portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    code, out, err = await zoningsync(db_url, "sync", "durham", "--sources",
                                      str(tmp_path / "sources"))
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "zoningsync: error: unknown jurisdiction 'durham'; known jurisdictions: test-county"]


BROKEN_DURHAM = """
[jurisdiction]
id = "durham"

[[feeds]]
id = "parcels"
kind = "parcels"
type = "arcgis"
url = "https://gis.example.gov/arcgis/rest/services/P/FeatureServer/0"
key = "PIN"
rate_limit = { requests_per_second = nan }
"""


async def test_a_good_target_syncs_beside_a_broken_file(db_url: str, tmp_path: Path,
                                                        portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    broken = tmp_path / "sources" / "durham.toml"
    broken.write_text(BROKEN_DURHAM)
    code, out, err = await zoningsync(db_url, "sync", "test-county/parcels", "--sources",
                                      str(tmp_path / "sources"), "--json")
    assert code == 0, err
    assert json.loads(out)[0]["status"] == "succeeded"
    warnings = [json.loads(line) for line in err.strip().splitlines()]
    [skipped] = [w for w in warnings if w.get("event") == "source file skipped"]
    assert skipped["file"] == str(broken)
    assert "rate_limit.requests_per_second" in skipped["error"]


async def test_a_target_only_a_broken_file_defines_exits_two_with_its_error(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    broken = tmp_path / "sources" / "durham.toml"
    broken.write_text(BROKEN_DURHAM)
    code, out, err = await zoningsync(db_url, "sync", "durham", "--sources",
                                      str(tmp_path / "sources"))
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"zoningsync: error: {broken}: feeds.parcels.rate_limit.requests_per_second: nan is "
        "not a finite number; use a number greater than 0 and at most 1000"]


async def test_an_unreachable_server_fails_the_run_with_exit_one(db_url: str,
                                                                 tmp_path: Path) -> None:
    feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/X/FeatureServer/0",
                max_retries=1)
    code, out, err = await zoningsync(db_url, "sync", "test-county", "--sources",
                                      str(tmp_path / "sources"), "--json")
    assert code == 1
    assert json.loads(out)[0]["status"] == "failed"
    assert "Traceback" not in err


async def test_a_refused_database_url_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = await zoningsync("postgresql://nobody@127.0.0.1:9/none", "runs")
    assert code == 1
    assert "cannot connect to postgresql://nobody@127.0.0.1:9/none" in err
    assert "Traceback" not in err


async def test_kill_9_mid_run_then_rerun_gives_the_clean_result(
        db_url: str, db: asyncpg.Connection, cluster_url: str, tmp_path: Path,
        portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0), page_size=100)
    sources = str(tmp_path / "sources")
    portal.behaviours.latency_ms = 60  # slow enough to be killed mid-fetch
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, "sync", "test-county/parcels", "--sources",
        sources, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    for _ in range(400):
        stored = await db.fetchval(
            "SELECT count(*) FROM zoningsync.staged_pages WHERE premerged")
        if stored >= 3:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert await db.fetchval("SELECT status FROM zoningsync.runs") == "running"
    # A first load stores pages as it stages them: rows, but no checkpoint yet.
    assert await db.fetchval("SELECT count(*) FROM zoningsync.features") >= 200
    assert await db.fetchval("SELECT count(*) FROM zoningsync.chunk_checkpoints") == 0
    portal.behaviours.latency_ms = 0

    code, out, err = await zoningsync(db_url, "sync", "test-county/parcels", "--sources",
                                      sources, "--json")
    assert code == 0, err
    [summary] = json.loads(out)
    assert summary["resumed"] == 1
    resumed_state = await features(db)

    clean_db = db_url.replace("/zs_t_", "/zs_clean_")
    clean_name = urlsplit(clean_db).path.lstrip("/")
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f"CREATE DATABASE {clean_name} TEMPLATE zs_template")
        code, _, err = await zoningsync(clean_db, "sync", "test-county/parcels", "--sources",
                                        sources)
        assert code == 0, err
        clean = await asyncpg.connect(clean_db)
        try:
            assert await features(clean) == resumed_state
            history = "SELECT op, count(*) FROM zoningsync.feature_history GROUP BY op"
            assert sorted(map(tuple, await clean.fetch(history))) == sorted(
                map(tuple, await db.fetch(history)))
        finally:
            await clean.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {clean_name} WITH (FORCE)")
        await admin.close()


@pytest.mark.parametrize("args", [("runs", "--limit", "-1"),
                                  ("quarantine", "list", "--limit", "99999999999999999999"),
                                  ("demo", "--parcels", "0")])
async def test_an_out_of_range_count_is_a_usage_error_before_any_work(args: tuple[str, ...]
                                                                      ) -> None:
    code, out, err = await zoningsync("postgresql://nobody@127.0.0.1:9/none", *args)
    assert code == 2
    assert out == ""
    assert "is not in the range" in err
    assert "Traceback" not in err
