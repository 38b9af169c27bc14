"""Signed hooks to a real `zoningsync run`: each asks for a run, bursts coalesce.

The county serves a change-tracking layer, so a hook-triggered run reads
`extractChanges` since its stored generation (the payload's `changesUrl` is
never fetched). Absence of a run is checked after three scheduler ticks.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.daemon_helpers import (
    FEED,
    Daemon,
    start_daemon,
    wait_until,
    write_sources,
    zoningsync,
)
from zoningsync.daemon.scheduler import TICK_S
from zoningsync.errors import SettingsError
from zoningsync.portal.changes import hook_payload, send_hook
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.settings import load_settings
from zoningsync.webhooks import ABSORB_S, HookCoalescer

SECRET = "hook-secret-for-the-daemon"
SECRET_ENV = "ZS_TEST_DAEMON_HOOK_SECRET"
FEED_ID = "test-county/parcels-00"
QUIET_S = 3 * TICK_S


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(300, seed=5)) as running:
        running.behaviours.change_tracking = True
        yield running


def write_hook_sources(directory: Path, url: str, page_size: int = 100) -> None:
    """One feed on the layer that accepts hooks signed with SECRET."""
    directory.mkdir(exist_ok=True)
    feed = FEED.format(feed_id="parcels-00", url=url, schedule="every 1d", page_size=page_size)
    feed = feed.replace("[feeds.fields]", f'webhook_secret_env = "{SECRET_ENV}"\n[feeds.fields]')
    (directory / "test-county.toml").write_text(
        f'[jurisdiction]\nid = "test-county"\n{feed}')


async def start_receiving(db_url: str, tmp_path: Path, portal: RunningPortal, *args: str,
                          page_size: int = 100) -> Daemon:
    write_hook_sources(tmp_path / "sources", portal.layer_url(0), page_size)
    return await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                              "--webhooks", "127.0.0.1:0", *args, env={SECRET_ENV: SECRET})


async def hook_url(daemon: Daemon) -> str:
    async def serving() -> Any:
        return daemon.event("webhooks serving")

    port = (await wait_until(serving))["port"]
    return f"http://127.0.0.1:{port}/hooks/{FEED_ID}"


def payload(portal: RunningPortal) -> bytes:
    return hook_payload(portal.service_url, 0, [1000])


async def first_run(db: asyncpg.Connection[Any]) -> int:
    """The id of the feed's first run (due at once), once the daemon is done with it.

    Done means the run succeeded, its claim is released and its first second has
    passed: a hook in a run's first second is absorbed by it (the contract), even
    when that run ends within the second, so a later hook must come after it.
    """
    async def finished() -> Any:
        return await db.fetchrow(
            "SELECT r.id, extract(epoch FROM clock_timestamp() - r.started_at) AS age_s "
            "FROM zoningsync.runs r JOIN zoningsync.schedules s ON s.feed = r.feed "
            "WHERE r.status = 'succeeded' AND s.claimed_by IS NULL ORDER BY r.id LIMIT 1")

    run = await wait_until(finished)
    await asyncio.sleep(max(0.0, ABSORB_S - float(run["age_s"])) + 0.1)
    return int(run["id"])


async def runs_after(db: asyncpg.Connection[Any], run_id: int) -> list[Any]:
    return await db.fetch("SELECT id, status, mode, started_at, inserted, updated, retired "
                          "FROM zoningsync.runs WHERE id > $1 ORDER BY id", run_id)


async def settled_runs_after(db: asyncpg.Connection[Any], run_id: int) -> list[Any]:
    """The runs after `run_id` once none is running, asked for or claimed for QUIET_S."""
    async def idle() -> bool:
        return bool(await db.fetchval(
            "SELECT NOT EXISTS (SELECT 1 FROM zoningsync.runs WHERE status = 'running') "
            "AND NOT EXISTS (SELECT 1 FROM zoningsync.schedules "
            "                WHERE claimed_by IS NOT NULL OR run_now_requested_at IS NOT NULL)"))

    await wait_until(idle)
    await asyncio.sleep(QUIET_S)
    await wait_until(idle)
    return await runs_after(db, run_id)


async def test_a_signed_hook_starts_a_run_within_two_seconds(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    daemon = await start_receiving(db_url, tmp_path, portal)
    try:
        url = await hook_url(daemon)
        first = await first_run(db)
        status = await send_hook(http, url, payload(portal), SECRET)
        accepted_at: datetime = await db.fetchval("SELECT clock_timestamp()")

        async def started() -> Any:
            return await db.fetchval("SELECT started_at FROM zoningsync.runs WHERE id > $1",
                                     first)

        started_at: datetime = await wait_until(started, within_s=30, every=0.02)
        [run] = await settled_runs_after(db, first)
    finally:
        assert await daemon.stop() == 0
    latency_s = (started_at - accepted_at).total_seconds()
    print(f"hook answered 202 -> run started_at: {latency_s:.3f} s")
    assert status == 202
    assert latency_s < 5
    assert (run["status"], run["mode"]) == ("succeeded", "incremental")
    assert (run["inserted"], run["updated"], run["retired"]) == (0, 0, 0)


async def test_a_badly_signed_hook_starts_no_run(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    daemon = await start_receiving(db_url, tmp_path, portal)
    try:
        url = await hook_url(daemon)
        first = await first_run(db)
        status = await send_hook(http, url, payload(portal), "not the secret")
        later = await settled_runs_after(db, first)
    finally:
        assert await daemon.stop() == 0
    assert status == 401
    assert later == []
    [refusal] = [e for e in daemon.events()
                 if e["event"] == "a hook with a bad or missing signature was refused"]
    assert refusal["feed"] == FEED_ID and "body" not in refusal


async def test_fifty_hooks_in_a_burst_give_at_most_two_runs(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    daemon = await start_receiving(db_url, tmp_path, portal)
    try:
        url = await hook_url(daemon)
        first = await first_run(db)
        async with http.post(f"{portal.base_url}/_portal/hooks/send",
                             json={"url": url, "secret": SECRET, "count": 50}) as answer:
            sent = await answer.json()
        later = await settled_runs_after(db, first)
    finally:
        assert await daemon.stop() == 0
    assert sent == {"sent": 50, "statuses": {"202": 50}}
    print(f"50 hooks in a burst gave {len(later)} run(s)")
    assert 1 <= len(later) <= 2
    assert {r["status"] for r in later} == {"succeeded"}


async def test_a_hook_during_a_run_gives_exactly_one_more_run_after_it(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    # 30 pages of half a second, at most four in flight: the first run lasts seconds,
    # until the latency is lifted once the hooks are in.
    portal.behaviours.latency_ms = 500
    daemon = await start_receiving(db_url, tmp_path, portal, page_size=10)
    try:
        url = await hook_url(daemon)

        async def running_past_its_first_second() -> Any:
            return await db.fetchval(
                "SELECT id FROM zoningsync.runs WHERE status = 'running' "
                "AND clock_timestamp() - started_at > interval '1.5 seconds'")

        during = int(await wait_until(running_past_its_first_second, every=0.05))
        statuses = [await send_hook(http, url, payload(portal), SECRET) for _ in range(3)]
        portal.behaviours.latency_ms = 0
        later = await settled_runs_after(db, during)
    finally:
        assert await daemon.stop() == 0
    assert statuses == [202, 202, 202]
    assert [r["status"] for r in later] == ["succeeded"]


async def test_a_paused_feed_accepts_a_hook_records_it_and_does_not_run(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    daemon = await start_receiving(db_url, tmp_path, portal)
    try:
        url = await hook_url(daemon)
        first = await first_run(db)
        code, _, err = await zoningsync(db_url, "pause", FEED_ID, "--reason", "county audit")
        assert code == 0, err
        status = await send_hook(http, url, payload(portal), SECRET)

        async def recorded() -> Any:
            return await db.fetchrow("SELECT target, outcome, reason, detail FROM "
                                     "zoningsync.admin_actions WHERE action = 'webhook'")

        audit = await wait_until(recorded)
        later = await settled_runs_after(db, first)
    finally:
        assert await daemon.stop() == 0
    assert status == 202
    assert (audit["target"], audit["outcome"], audit["reason"]) == (
        FEED_ID, "refused", "county audit")
    assert "paused" in audit["detail"]
    assert later == []


async def test_an_address_without_a_host_is_refused_not_read_as_every_interface(
        db_url: str, tmp_path: Path) -> None:
    code, _, err = await zoningsync(db_url, "run", "--sources", str(tmp_path),
                                    "--webhooks", ":9465")
    assert code == 2
    assert "webhooks address ':9465' is invalid" in err
    assert "ZONINGSYNC_WEBHOOKS" in err and "Traceback" not in err


async def test_every_interface_is_served_when_the_settings_file_says_0_0_0_0(
        db_url: str, tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    write_hook_sources(tmp_path / "sources", portal.layer_url(0))
    config = tmp_path / "zoningsync.toml"
    config.write_text('[webhooks]\nlisten = "0.0.0.0:0"\n')
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                env={SECRET_ENV: SECRET, "ZONINGSYNC_CONFIG": str(config)})
    try:
        url = await hook_url(daemon)
        status = await send_hook(http, url, payload(portal), SECRET)
    finally:
        assert await daemon.stop() == 0
    serving = daemon.event("webhooks serving")
    assert serving is not None and serving["address"].startswith("0.0.0.0:")
    assert daemon.event("webhooks listen on every interface, as asked") is not None
    assert status == 202


async def test_the_receiver_is_off_by_default(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path,
        portal: RunningPortal) -> None:
    write_hook_sources(tmp_path / "sources", portal.layer_url(0))
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                env={SECRET_ENV: SECRET})
    try:
        await first_run(db)
    finally:
        assert await daemon.stop() == 0
    assert daemon.event("daemon ready") is not None
    assert daemon.event("webhooks serving") is None


async def test_the_portal_sends_no_hooks_without_a_receiver_url(
        portal: RunningPortal, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{portal.base_url}/_portal/hooks/send",
                         json={"url": "ftp://127.0.0.1/x", "count": 5}) as answer:
        assert answer.status == 400
        assert "url" in (await answer.json())["error"]


async def test_a_bad_webhooks_address_in_the_settings_file_names_the_file_and_key(
        db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "zoningsync.toml"
    config.write_text('[webhooks]\nlisten = "9465"\n')
    code, _, err = await zoningsync(db_url, "--config", str(config), "run",
                                    "--sources", str(tmp_path))
    assert code == 2
    assert f"{config}: [webhooks] listen" in err and "Traceback" not in err


def test_an_unknown_key_in_the_webhooks_table_is_named(tmp_path: Path) -> None:
    config = tmp_path / "zoningsync.toml"
    config.write_text('[webhooks]\nport = 9465\n')
    with pytest.raises(SettingsError, match=r"unknown key 'webhooks.port'; valid keys are listen"):
        load_settings(config_file=str(config))


async def test_a_feed_that_accepts_hooks_after_a_reload_takes_them(
        db_url: str, db: asyncpg.Connection[Any], tmp_path: Path, portal: RunningPortal,
        http: aiohttp.ClientSession) -> None:
    write_sources(tmp_path / "sources", portal.layer_url(0), 1)
    daemon = await start_daemon(db_url, tmp_path / "sources", tmp_path / "d.log",
                                "--webhooks", "127.0.0.1:0", env={SECRET_ENV: SECRET})
    try:
        url = await hook_url(daemon)
        await first_run(db)
        before = await send_hook(http, url, payload(portal), SECRET)
        write_hook_sources(tmp_path / "sources", portal.layer_url(0))
        daemon.signal(signal.SIGHUP)

        async def reloaded() -> Any:
            return daemon.event("sources reloaded")

        await wait_until(reloaded)
        after = await send_hook(http, url, payload(portal), SECRET)
    finally:
        assert await daemon.stop() == 0
    assert (before, after) == (404, 202)


def test_a_run_asked_for_that_another_daemon_took_stops_absorbing_hooks() -> None:
    coalescer = HookCoalescer(queued_expire_s=10.0)
    assert coalescer.hook(FEED_ID, 0.0) is True
    assert coalescer.hook(FEED_ID, 9.9) is False
    assert coalescer.hook(FEED_ID, 10.0) is True


def test_an_ask_that_came_to_nothing_lets_the_next_hook_ask_again() -> None:
    coalescer = HookCoalescer()
    assert coalescer.hook(FEED_ID, 0.0) is True
    coalescer.dropped(FEED_ID)
    assert coalescer.hook(FEED_ID, 0.1) is True


async def test_a_receiver_address_in_use_stops_the_daemon_with_one_line(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    write_hook_sources(tmp_path / "sources", portal.layer_url(0))
    taken = portal.base_url.rpartition("//")[2]
    code, _, err = await zoningsync(db_url, "run", "--sources", str(tmp_path / "sources"),
                                    "--metrics", "off", "--webhooks", taken)
    assert code == 1
    assert f"cannot receive webhooks on {taken}" in err and "Traceback" not in err
