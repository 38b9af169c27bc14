"""What a re-sync asks the server: each deciding request once, and no key read for
deletions while the stored id map stands for the layer (renumbering is detected).

A recording proxy on 127.0.0.1 sits between the run and the simulated portal and
notes every request (path and parameters, token and format aside).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import pytest
from aiohttp import web

from tests.portal_helpers import feed_config
from tests.test_sync import run, settings_for
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.admin import resume
from zoningsync.services.rollback import roll_back

PARCELS = 1500
Request = tuple[str, tuple[tuple[str, str], ...]]


class RecordingProxy:
    """Forwards every request to the portal and remembers what was asked."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.asked: list[Request] = []
        self.url = ""

    async def forward(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        body = await request.read()
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.asked.append((request.path, tuple(sorted(
            (k, v) for k, v in params.items() if k not in ("f", "token")))))
        async with aiohttp.ClientSession() as session, session.request(
                request.method, self.target + request.path_qs, data=body,
                headers={"Content-Type": request.headers.get("Content-Type", "")}) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type=answer.content_type)

    def kinds(self) -> Counter[str]:
        """How many requests of each kind: metadata, service root, ids, count, keys, page."""
        kinds: Counter[str] = Counter()
        for path, params in self.asked:
            asked = dict(params)
            if not path.endswith("/query"):
                kinds["service" if path.endswith("FeatureServer") else "metadata"] += 1
            elif asked.get("returnIdsOnly") == "true":
                kinds["ids"] += 1
            elif asked.get("returnCountOnly") == "true":
                kinds["count"] += 1
            elif asked.get("returnGeometry") == "false":
                kinds["keys"] += 1
            else:
                kinds["page"] += 1
        return kinds


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


@pytest.fixture
async def proxy(portal: RunningPortal) -> AsyncIterator[RecordingProxy]:
    recording = RecordingProxy(portal.base_url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording.forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recording.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield recording
    finally:
        await runner.cleanup()


def layer_url(proxy: RecordingProxy, portal: RunningPortal) -> str:
    return proxy.url + portal.layer_url(0).removeprefix(portal.base_url)


async def full_read_changes_nothing(db_url: str, tmp_path: Path, feed: Any) -> Any:
    """A full read after the run under test: it agrees when it inserts, updates and
    retires nothing. Its summary, for what a test checks beyond that."""
    full = await run(db_url, tmp_path, feed, full=True)
    assert (full["inserted"], full["updated"], full["retired"]) == (0, 0, 0)
    return full


async def test_an_unchanged_resync_asks_each_deciding_request_once(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        proxy: RecordingProxy) -> None:
    feed = feed_config(tmp_path, layer_url(proxy, portal))
    await run(db_url, tmp_path, feed)
    proxy.asked.clear()
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental"
    assert [asked for asked, times in Counter(proxy.asked).items() if times > 1] == []
    kinds = proxy.kinds()
    # The layer's metadata, its service root (incremental = "auto"), the layer's ids,
    # the ids edited since the mark minus the overlap, the count edited after it.
    assert (kinds["metadata"], kinds["service"], kinds["ids"], kinds["count"]) == (1, 1, 2, 1)
    assert kinds["keys"] == 0


async def test_a_changed_layer_finds_its_deletions_from_the_id_list_without_reading_keys(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        proxy: RecordingProxy) -> None:
    feed = feed_config(tmp_path, layer_url(proxy, portal))
    await run(db_url, tmp_path, feed)
    published = portal.county.publish(0.05, seed=2)
    proxy.asked.clear()
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental"
    assert summary["retired"] == published["deleted"] > 0
    retired = {r["source_key"] for r in await db.fetch(
        "SELECT source_key FROM zoningsync.feature_history WHERE op = 'retire'")}
    assert retired == set(published["deleted_pins"])
    assert proxy.kinds()["keys"] == 1  # the sample of ids checked against the map
    full = await full_read_changes_nothing(db_url, tmp_path, feed)
    assert full["chunks_written"] == 0


async def test_a_renumbered_layer_falls_back_to_reading_keys(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        proxy: RecordingProxy) -> None:
    feed = feed_config(tmp_path, layer_url(proxy, portal))
    await run(db_url, tmp_path, feed)
    portal.county.republish()
    published = portal.county.publish(0.05, seed=3)
    proxy.asked.clear()
    summary = await run(db_url, tmp_path, feed)
    assert summary["retired"] == published["deleted"] > 0
    assert proxy.kinds()["keys"] >= PARCELS // 500  # every page of keys (page_size 500)


async def test_ids_shuffled_within_the_same_set_are_caught_by_the_sample(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        proxy: RecordingProxy) -> None:
    feed = feed_config(tmp_path, layer_url(proxy, portal))
    await run(db_url, tmp_path, feed)
    parcels = portal.county.parcels
    live = np.nonzero(parcels.live())[0]
    oids = parcels.data["OBJECTID"]
    oids[live] = np.random.default_rng(5).permutation(oids[live])
    published = portal.county.publish(0.05, seed=4)
    proxy.asked.clear()
    summary = await run(db_url, tmp_path, feed)
    assert summary["retired"] == published["deleted"] > 0
    assert proxy.kinds()["keys"] >= PARCELS // 500  # every page of keys (page_size 500)


async def test_a_first_load_maps_every_stored_feature_to_its_object_id(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    await run(db_url, tmp_path, feed_config(tmp_path, portal.layer_url(0)))
    unmapped = await db.fetchval(
        "SELECT count(*) FROM zoningsync.features f WHERE NOT EXISTS ("
        " SELECT 1 FROM zoningsync.feature_oids m"
        " WHERE m.feed = f.feed AND m.source_key = f.source_key)")
    assert unmapped == 0
    assert await db.fetchval("SELECT count(*) FROM zoningsync.feature_oids") == \
        await db.fetchval("SELECT count(*) FROM zoningsync.features")


async def test_an_overlap_window_read_back_as_stored_is_taken_at_its_checkpoints_unhashed(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    # Checkpoints no hash of any content matches: a chunk that were hashed would
    # differ from its checkpoint and be merged again.
    await db.execute("UPDATE zoningsync.chunk_checkpoints SET hash = '\\x00'")
    summary = await run(db_url, tmp_path, feed)
    assert summary["mode"] == "incremental" and summary["fetched"] > 0
    assert summary["chunks_total"] > 0
    assert summary["chunks_written"] == 0


async def test_a_layer_with_quarantined_records_finds_deletions_from_the_id_list(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, proxy: RecordingProxy) -> None:
    async with run_portal(County(3000, seed=3)) as portal:  # holds null and bow-tie parcels
        proxy.target = portal.base_url
        feed = feed_config(tmp_path, layer_url(proxy, portal))
        first = await run(db_url, tmp_path, feed)
        assert first["quarantined"] > 0
        published = portal.county.publish(0.05, seed=2)
        proxy.asked.clear()
        summary = await run(db_url, tmp_path, feed)
        assert summary["retired"] == published["deleted"] > 0
        assert proxy.kinds()["keys"] == 1  # the sample of ids checked against the map
        full = await full_read_changes_nothing(db_url, tmp_path, feed)
        assert full["chunks_written"] == 0


async def test_after_a_rollback_deletions_are_found_by_reading_keys_until_a_full_read(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        proxy: RecordingProxy) -> None:
    feed = feed_config(tmp_path, layer_url(proxy, portal))
    await run(db_url, tmp_path, feed)
    portal.county.publish(0.05, seed=2)
    undone = await run(db_url, tmp_path, feed)
    await roll_back(settings_for(db_url, tmp_path), undone["id"], cascade=False, dry_run=False)
    await resume(settings_for(db_url, tmp_path), feed.full_id, tmp_path / "sources")
    published = portal.county.publish(0.05, seed=3)
    proxy.asked.clear()
    summary = await run(db_url, tmp_path, feed)
    assert summary["retired"] >= published["deleted"] > 0
    assert proxy.kinds()["keys"] >= PARCELS // 500  # every page of keys (page_size 500)
    await full_read_changes_nothing(db_url, tmp_path, feed)
