"""The run boundary: whatever fails, the run's row says so in one redacted line.

A weird answer is served by a real proxy in front of the simulated portal: it
passes every request through but answers the object-id query with ids that are
no numbers (one of them shaped like a token), which no error class of
zoningsync anticipates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web

from tests.portal_helpers import feed_config
from tests.test_sync import PARCELS, settings_for
from zoningsync.errors import describe_failure
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import sync_feeds

SECRET = "s3cr3t-token-value"
WEIRD_IDS = {"objectIds": ["7", f"token={SECRET}"]}


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


@pytest.fixture
async def weird_proxy(portal: RunningPortal) -> AsyncIterator[str]:
    """The portal's base URL as seen through a proxy with a weird object-id answer."""
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            params = {**request.query, **(await request.post())}
            if str(params.get("returnIdsOnly", "")).lower() == "true":
                return web.Response(body=orjson.dumps(WEIRD_IDS),
                                    content_type="application/json")
            async with session.get(portal.base_url + request.path, params=params) as answer:
                return web.Response(body=await answer.read(), status=answer.status,
                                    content_type=answer.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()


def through(proxy: str, portal: RunningPortal) -> str:
    return portal.layer_url(0).replace(portal.base_url, proxy)


async def test_an_unanticipated_error_fails_its_run_and_the_next_feed_still_syncs(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        weird_proxy: str) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    weird = feed_config(tmp_path / "a", through(weird_proxy, portal), feed_id="weird")
    fine = feed_config(tmp_path / "b", portal.layer_url(0))
    failed, succeeded = await sync_feeds(settings_for(db_url, tmp_path), [weird, fine],
                                         full=False, interactive=False)
    assert (failed["status"], failed["exit_code"]) == ("failed", 1)
    assert succeeded["status"] == "succeeded" and succeeded["fetched"] == PARCELS
    status, error = await db.fetchrow(
        "SELECT status, error FROM zoningsync.runs WHERE feed = $1", weird.full_id)
    assert status == "failed"
    assert error and "\n" not in error and error in failed["error"]


async def test_a_run_failure_is_recorded_and_reported_redacted(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        weird_proxy: str) -> None:
    feed = feed_config(tmp_path, through(weird_proxy, portal))
    [failed] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                interactive=False)
    error = await db.fetchval("SELECT error FROM zoningsync.runs")
    assert SECRET not in error and SECRET not in failed["error"]
    assert "not an integer" in error


async def test_a_failure_while_planning_leaves_a_failed_run_without_a_mode(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal,
        weird_proxy: str) -> None:
    feed = feed_config(tmp_path, through(weird_proxy, portal))
    await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False, interactive=False)
    row = await db.fetchrow("SELECT status, mode, phase, fingerprint FROM zoningsync.runs")
    assert row is not None
    assert (row["status"], row["mode"], row["phase"]) == ("failed", None, "done")
    assert row["fingerprint"]


async def test_every_failed_attempt_is_a_run_and_none_is_resumed(
        db_url: str, db: asyncpg.Connection, tmp_path: Path) -> None:
    feed = feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/X/FeatureServer/0",
                       max_retries=0)
    for _ in range(3):
        [failed] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                    interactive=False)
        assert failed["status"] == "failed"
    rows = await db.fetch("SELECT status, phase, resumed, error FROM zoningsync.runs ORDER BY id")
    assert [(r["status"], r["phase"], r["resumed"]) for r in rows] == [("failed", "done", 0)] * 3
    assert all(r["error"] for r in rows)


async def test_a_run_killed_while_planning_is_superseded_not_resumed(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await db.execute(
        "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
        " VALUES ($1, $2, $3, 'parcels', 'arcgis', $4)",
        feed.full_id, feed.jurisdiction, feed.id, feed.url)
    killed = await db.fetchval(
        "INSERT INTO zoningsync.runs (feed, mode, phase) VALUES ($1, NULL, 'plan')"
        " RETURNING id", feed.full_id)
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                 interactive=False)
    assert summary["status"] == "succeeded" and summary["id"] != killed
    status, phase = await db.fetchrow(
        "SELECT status, phase FROM zoningsync.runs WHERE id = $1", killed)
    assert (status, phase) == ("failed", "done")


@pytest.mark.parametrize(("error", "described"), [
    (KeyError("PIN"), "KeyError: 'PIN'"),
    (RecursionError(), "RecursionError"),
    (ValueError("bad\nanswer  token=abcdefgh"), "ValueError: bad answer token=***"),
])
def test_any_exception_is_described_as_one_redacted_line_naming_its_type(
        error: Exception, described: str) -> None:
    assert describe_failure(error) == described
