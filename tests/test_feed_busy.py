"""A feed synced by another process: exit 75 (try again later), naming who holds it."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.portal_helpers import feed_config
from tests.test_cli_sync import zoningsync
from tests.test_sync import PARCELS, count, settings_for
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.services.sync import exit_code_of, sync_feeds
from zoningsync.store.lease import feed_lease

HOLDER = f"zoningsync {socket.gethostname()}:{os.getpid()}"


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


async def test_a_feed_leased_elsewhere_is_busy_with_exit_75_naming_the_holder(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    async with feed_lease(db_url, feed.full_id):
        [busy] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                  interactive=False)
    assert (busy["status"], busy["exit_code"]) == ("busy", 75)
    assert HOLDER in busy["error"]
    assert await count(db, "runs") == 0  # the holder's runs stay the newest


async def test_the_cli_exits_75_when_every_feed_it_could_not_sync_was_busy(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    async with feed_lease(db_url, feed.full_id):
        code, _, err = await zoningsync(db_url, "sync", "test-county", "--sources",
                                        str(tmp_path / "sources"))
    assert code == 75
    assert HOLDER in err and "Traceback" not in err


@pytest.mark.parametrize(("statuses", "code"), [
    ([("succeeded", 0)], 0),
    ([("succeeded", 0), ("busy", 75)], 75),
    ([("busy", 75), ("busy", 75)], 75),
    ([("busy", 75), ("failed", 1)], 1),
    ([("failed", 2), ("busy", 75), ("failed", 1)], 2),
    ([("held", None)], 1),
])
def test_the_exit_code_is_75_only_when_every_feed_not_synced_was_busy(
        statuses: list[tuple[str, int | None]], code: int) -> None:
    results: list[dict[str, Any]] = [
        {"status": status, **({"exit_code": c} if c is not None else {})}
        for status, c in statuses]
    assert exit_code_of(results) == code
