"""The mass-retire guard: a half-finished publish holds the run before it writes anything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from tests.portal_helpers import feed_config
from tests.test_cli_sync import zoningsync
from tests.test_sync import PARCELS, count, run, settings_for, table_state
from zoningsync.config import FeedConfig
from zoningsync.errors import SourceConfigError
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.retire_guard import retire_guard
from zoningsync.services.sync import sync_feeds


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(PARCELS, seed=11)) as running:
        yield running


def unpublish(portal: RunningPortal, fraction: float) -> None:
    """Delete the first `fraction` of the parcels, as a truncate-and-append caught midway."""
    layer = portal.county.parcels
    layer.deleted[np.arange(int(layer.size * fraction))] = True


async def written(db: asyncpg.Connection) -> tuple[Any, ...]:
    """Everything a merge writes: features, history, zoning changes, checkpoints."""
    checkpoints = await db.fetch(
        "SELECT feed, chunk, hash, row_count, run_id FROM zoningsync.chunk_checkpoints"
        " ORDER BY feed, chunk")
    return (await table_state(db), await count(db, "feature_history"),
            await count(db, "zoning_changes"), [tuple(r) for r in checkpoints])


async def sync_once(db_url: str, tmp_path: Path, feed: FeedConfig, **options: Any
                    ) -> dict[str, Any]:
    [summary] = await sync_feeds(settings_for(db_url, tmp_path), [feed], full=False,
                                 interactive=False, **options)
    return summary


async def test_a_publish_deleting_40_percent_is_held_and_writes_nothing(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    stored = await count(db, "features")
    before = await written(db)
    unpublish(portal, 0.4)
    held = await sync_once(db_url, tmp_path, feed)
    assert held["status"] == "held"
    assert f"of the {stored} features stored" in held["error"]
    assert f"zoningsync sync {feed.full_id} --allow-mass-retire" in held["error"]
    assert await written(db) == before
    assert await count(db, "staged_rows") == await count(db, "retiring") == 0
    assert await db.fetchval("SELECT last_success_run FROM zoningsync.feeds") != held["id"]


async def test_the_next_run_reads_again_and_is_held_again(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    before = await written(db)
    unpublish(portal, 0.4)
    first = await sync_once(db_url, tmp_path, feed)
    second = await sync_once(db_url, tmp_path, feed)
    assert (first["status"], second["status"]) == ("held", "held")
    assert second["id"] != first["id"] and second["resumed"] == 0
    assert await written(db) == before


async def test_allow_mass_retire_lets_the_run_retire_them(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0))
    await run(db_url, tmp_path, feed)
    stored = await count(db, "features")
    unpublish(portal, 0.4)
    assert (await sync_once(db_url, tmp_path, feed))["status"] == "held"
    allowed = await sync_once(db_url, tmp_path, feed, allow_mass_retire=True)
    assert allowed["status"] == "succeeded"
    assert allowed["retired"] == stored - await count(db, "features") > 0.2 * stored
    assert await count(db, "feature_history", "op = 'retire'") == allowed["retired"]
    assert any("--allow-mass-retire" in w for w in allowed["warnings"])


async def test_a_first_load_is_never_held(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), extra="max_retire_fraction = 0")
    assert (await sync_once(db_url, tmp_path, feed))["status"] == "succeeded"


async def test_a_fraction_of_zero_holds_any_retirement(
        db_url: str, db: asyncpg.Connection, tmp_path: Path, portal: RunningPortal) -> None:
    feed = feed_config(tmp_path, portal.layer_url(0), extra="max_retire_fraction = 0")
    await run(db_url, tmp_path, feed)
    unpublish(portal, 0.002)
    assert (await sync_once(db_url, tmp_path, feed))["status"] == "held"


async def test_the_cli_exits_one_on_a_held_run_and_the_flag_lets_it_through(
        db_url: str, tmp_path: Path, portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0))
    sync = ("sync", "test-county/parcels", "--sources", str(tmp_path / "sources"), "--json")
    assert (await zoningsync(db_url, *sync))[0] == 0
    unpublish(portal, 0.4)
    code, out, err = await zoningsync(db_url, *sync)
    assert code == 1
    assert json.loads(out)[0]["status"] == "held"
    assert "Traceback" not in err
    code, out, _ = await zoningsync(db_url, *sync, "--allow-mass-retire")
    assert code == 0 and json.loads(out)[0]["retired"] > 0


@pytest.mark.parametrize(("current", "retiring", "fraction", "held"), [
    (0, 0, 0.2, False),        # a first load
    (0, 500, 0.0, False),      # nothing stored: nothing to protect
    (1000, 200, 0.2, False),   # exactly the fraction is allowed
    (1000, 201, 0.2, True),
    (1000, 1000, 1.0, False),  # 1 never holds
    (1000, 1, 0.0, True),      # 0 holds any retirement
    (1000, 0, 0.0, False),
])
def test_the_guard_holds_only_more_than_the_fraction_of_what_is_stored(
        current: int, retiring: int, fraction: float, held: bool) -> None:
    assert (retire_guard(current, retiring, fraction) is not None) == held


def test_the_guard_says_how_many_of_how_many() -> None:
    assert retire_guard(1500, 600, 0.2) == (
        "it would retire 600 of the 1500 features stored (40%), more than "
        "max_retire_fraction = 0.2 allows")


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf", '"0.2"', "true"])
def test_a_max_retire_fraction_outside_zero_to_one_is_refused_naming_the_key(
        tmp_path: Path, value: str) -> None:
    with pytest.raises(SourceConfigError, match=r"test-county\.toml: feeds\.parcels\."
                                                r"max_retire_fraction: "):
        feed_config(tmp_path, "http://127.0.0.1:9/x/FeatureServer/0",
                    extra=f"max_retire_fraction = {value}")


def test_max_retire_fraction_defaults_to_a_fifth(tmp_path: Path) -> None:
    assert feed_config(tmp_path, "http://127.0.0.1:9/x/FeatureServer/0").max_retire_fraction == 0.2
