"""`zoningsync sources check --probe`: what a run of each ArcGIS feed would do, from the server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.portal_helpers import feed_config
from tests.test_pause import zoningsync
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(700, seed=3)) as running:
        yield running


async def test_probe_reports_strategy_count_crs_edit_field_and_incremental(
        tmp_path: Path, portal: RunningPortal) -> None:
    feed_config(tmp_path, portal.layer_url(0), page_size=300)
    code, out, err = await zoningsync("postgresql://nobody@127.0.0.1:9/none", "sources",
                                      "check", "--probe", "--json", "--sources",
                                      str(tmp_path / "sources"))
    assert code == 0, err
    [probe] = json.loads(out)["probes"]
    assert probe == {"feed": "test-county/parcels", "ok": True, "strategy": "offset",
                     "count": 700, "pages": 3, "crs": "EPSG:4326",
                     "edit_date_field": "LAST_EDITED_DATE", "incremental": True}


async def test_probe_of_a_layer_without_edit_tracking_says_incremental_is_not_possible(
        tmp_path: Path, portal: RunningPortal) -> None:
    portal.behaviours.edit_tracking = False
    feed_config(tmp_path, portal.layer_url(0))
    code, out, err = await zoningsync("postgresql://nobody@127.0.0.1:9/none", "sources",
                                      "check", "--probe", "--sources", str(tmp_path / "sources"))
    assert code == 0, err
    assert out.strip().splitlines()[-1].endswith("edit date none, incremental not possible")


async def test_probe_of_an_unreachable_layer_exits_one_naming_the_feed(tmp_path: Path) -> None:
    feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/X/FeatureServer/0",
                max_retries=1)
    code, out, _ = await zoningsync("postgresql://nobody@127.0.0.1:9/none", "sources", "check",
                                    "--probe", "--sources", str(tmp_path / "sources"))
    assert code == 1
    assert "test-county/parcels: probe failed" in out
