"""`kill -9` of a change read, then `sync` again: exactly a full read, no generation skipped.

The stored server generation moves only in the transaction of the run's last
merged chunk. So whatever a kill leaves behind (chunks merged, an extract never
staged), the feed still stands at the generation it stood at, and the next sync
applies the changes since it: the same extract, staged or asked again.

The kill is placed by a lock, not by timing: a second session holds a table the
run must write at that point, the test waits until the run waits on it, and
sends SIGKILL to the `zoningsync sync` process.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from tests.portal_helpers import feed_config
from tests.test_cli_sync import ZONINGSYNC, zoningsync
from tests.test_sync import run
from tests.test_sync_changes import assert_a_full_read_agrees
from zoningsync.portal.changes import GEN_BASE, server_gen
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

# More rows than one merge batch (store.merge.BATCH_ROWS) in the chunks a 1%
# publish touches, so the change read merges in two transactions at least.
LARGE_COUNTY = 12_000
SMALL_COUNTY = 1_500
COARSE_CHUNKS = 5  # H3 resolution: a few hundred parcels a chunk, every chunk touched


@asynccontextmanager
async def tracking_portal(parcels: int) -> AsyncIterator[RunningPortal]:
    async with run_portal(County(parcels, seed=31)) as running:
        running.behaviours.change_tracking = True
        yield running


async def checkpoints(db: asyncpg.Connection) -> dict[str, bytes]:
    rows = await db.fetch("SELECT chunk, hash FROM zoningsync.chunk_checkpoints")
    return {r["chunk"]: r["hash"] for r in rows}


async def stored_generation(db: asyncpg.Connection) -> int | None:
    value = await db.fetchval("SELECT server_gen FROM zoningsync.runs WHERE status = "
                              "'succeeded' ORDER BY id DESC LIMIT 1")
    return None if value is None else int(value)


async def kill_sync_waiting_on(db_url: str, db: asyncpg.Connection, sources: Path,
                               table: str) -> None:
    """Start `zoningsync sync`, SIGKILL it once it waits for a lock on `table`."""
    blocker = await asyncpg.connect(db_url)
    holding = blocker.transaction()
    await holding.start()
    await blocker.execute(f"LOCK TABLE zoningsync.{table} IN SHARE MODE")
    proc = await asyncio.create_subprocess_exec(
        *ZONINGSYNC, "--database-url", db_url, "sync", "test-county/parcels", "--sources",
        str(sources), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        waiting = 0
        for _ in range(1200):
            waiting = await db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
                f"zoningsync.{table}")
            if waiting or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert waiting, f"the sync never reached a write to {table}"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        await holding.rollback()
        await blocker.close()
    for _ in range(200):  # the server ends the dead client's sessions once unblocked
        if not await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"):
            break
        await asyncio.sleep(0.05)


async def sync_again(db_url: str, sources: Path) -> dict[str, Any]:
    code, out, err = await zoningsync(db_url, "sync", "test-county/parcels", "--sources",
                                      str(sources), "--json")
    assert code == 0, err
    [summary] = json.loads(out)
    assert summary["status"] == "succeeded", summary
    return dict(summary)


async def test_kill_9_after_some_chunks_merged_resumes_from_the_same_generation(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with tracking_portal(LARGE_COUNTY) as portal:
        feed = feed_config(tmp_path, portal.layer_url(0), page_size=2000,
                           h3_resolution=COARSE_CHUNKS)
        await run(db_url, tmp_path, feed)
        loaded = await checkpoints(db)
        portal.county.publish(0.01, seed=32)

        # The run's last transaction merges its final batch, then records the
        # generation and the object ids: stop it there, the other batches committed.
        await kill_sync_waiting_on(db_url, db, tmp_path / "sources", "feature_oids")
        killed = await db.fetchrow(
            "SELECT id, status, phase, server_gen FROM zoningsync.runs ORDER BY id DESC LIMIT 1")
        assert (killed["status"], killed["phase"], killed["server_gen"]) == (
            "running", "merge", None)
        assert await stored_generation(db) == GEN_BASE
        merged_before_kill = await checkpoints(db)

        resumed = await sync_again(db_url, tmp_path / "sources")
        finished = await checkpoints(db)
        moved_at_kill = {c for c in loaded if merged_before_kill.get(c) != loaded[c]}
        moved_in_all = {c for c in loaded if finished.get(c) != loaded[c]}
        assert 0 < len(moved_at_kill) < len(moved_in_all)

        assert resumed["id"] == killed["id"] and resumed["resumed"] == 1
        # The killed run asked from the stored generation; its resume applies
        # that extract, staged, without asking the server again.
        assert portal.app.service.tracker.asked == [GEN_BASE]
        assert resumed["server_gen"] == await stored_generation(db) == server_gen(
            portal.county) == GEN_BASE + 1
        await assert_a_full_read_agrees(db, db_url, tmp_path, feed)


async def test_kill_9_before_the_extract_is_staged_asks_the_same_generation_again(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    async with tracking_portal(SMALL_COUNTY) as portal:
        feed = feed_config(tmp_path, portal.layer_url(0))
        await run(db_url, tmp_path, feed)
        portal.county.publish(0.01, seed=33)

        # The extract's features were only in the killed process's memory.
        await kill_sync_waiting_on(db_url, db, tmp_path / "sources", "staged_rows")
        assert await db.fetchval("SELECT count(*) FROM zoningsync.staged_rows") == 0
        assert await stored_generation(db) == GEN_BASE
        portal.county.publish(0.01, seed=34)  # the next extract holds both publishes

        resumed = await sync_again(db_url, tmp_path / "sources")
        assert resumed["resumed"] == 1 and resumed["mode"] == "incremental"
        assert portal.app.service.tracker.asked == [GEN_BASE, GEN_BASE]
        assert resumed["server_gen"] == await stored_generation(db) == server_gen(
            portal.county) == GEN_BASE + 2
        await assert_a_full_read_agrees(db, db_url, tmp_path, feed)
