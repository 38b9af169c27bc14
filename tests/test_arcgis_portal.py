"""The ArcGIS producer end to end against the simulated county portal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.portal_helpers import feed_config, read_all
from zoningsync.http import Fetcher, FetchStats, RetryPolicy
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal
from zoningsync.producers.arcgis.plan import FetchPlan
from zoningsync.producers.arcgis.producer import ArcgisProducer
from zoningsync.records import Page

FAST_RETRY = RetryPolicy(max_retries=8, timeout_s=10.0, backoff_initial_s=0.01,
                         backoff_max_s=0.05)


@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(1200, seed=3)) as running:
        yield running


def all_keys(pages: list[Page]) -> list[str | None]:
    return [r.source_key for page in pages for r in page.records]


async def test_offset_paging_reads_every_row_exactly_once(tmp_path: Path, fetcher: Fetcher,
                                                          portal: RunningPortal) -> None:
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=100),
                              fetcher, FetchStats(), retry=FAST_RETRY)
    plan = await producer.plan("1=1")
    assert plan.strategy == "offset" and len(plan.pages) == 12
    keys = all_keys(await read_all(producer, plan))
    assert len(keys) == 1200 == len(set(keys))


async def test_without_pagination_object_id_batches_are_used(tmp_path: Path, fetcher: Fetcher,
                                                             portal: RunningPortal) -> None:
    portal.behaviours.pagination = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=500),
                              fetcher, FetchStats(), retry=FAST_RETRY)
    plan = await producer.plan("1=1")
    assert plan.strategy == "oids"
    keys = all_keys(await read_all(producer, plan))
    assert len(keys) == 1200 == len(set(keys))
    assert portal.app.stats.requests["query"] >= 3


async def test_a_silent_cap_shrinks_pages_and_skips_no_row(tmp_path: Path, fetcher: Fetcher,
                                                           portal: RunningPortal) -> None:
    portal.behaviours.update({"silent_cap": 70})
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=250),
                              fetcher, FetchStats(), retry=FAST_RETRY)
    plan = await producer.plan("1=1")
    keys = all_keys(await read_all(producer, plan))
    assert len(keys) == 1200 == len(set(keys))


async def test_a_silent_cap_on_object_id_batches_asks_for_the_rest(
        tmp_path: Path, fetcher: Fetcher, portal: RunningPortal) -> None:
    portal.behaviours.update({"silent_cap": 90, "pagination": False})
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=400),
                              fetcher, FetchStats(), retry=FAST_RETRY)
    keys = all_keys(await read_all(producer, await producer.plan("1=1")))
    assert len(keys) == 1200 == len(set(keys))
    assert producer.missing_oids == 0


async def test_faults_are_ridden_through_to_the_exact_result(tmp_path: Path, fetcher: Fetcher,
                                                             portal: RunningPortal) -> None:
    portal.behaviours.update({"error_json_rate": 0.04, "http_503_rate": 0.03,
                              "http_429_rate": 0.02, "truncate_rate": 0.02,
                              "html_rate": 0.01, "retry_after_s": 0, "seed": 5})
    feed = feed_config(tmp_path, portal.layer_url(0), page_size=100)
    stats = FetchStats()
    producer = ArcgisProducer(feed, fetcher, stats, retry=FAST_RETRY)
    keys = all_keys(await read_all(producer, await producer.plan("1=1")))
    assert len(keys) == 1200 == len(set(keys))
    assert stats.retries > 0


async def test_edited_since_uses_timestamp_literals(tmp_path: Path, fetcher: Fetcher,
                                                    portal: RunningPortal) -> None:
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    found = await producer.edited_since(datetime(2024, 1, 1, tzinfo=UTC))
    assert found is not None
    where, count = found
    assert "TIMESTAMP '2024-01-01 00:00:00'" in where
    assert 0 < count < 1200


async def test_edited_since_falls_back_to_epoch_milliseconds(tmp_path: Path, fetcher: Fetcher,
                                                            portal: RunningPortal) -> None:
    portal.behaviours.timestamp_literals = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    found = await producer.edited_since(datetime(2024, 1, 1, tzinfo=UTC))
    assert found is not None
    assert found[0] == "LAST_EDITED_DATE > 1704067200000"


async def test_keys_reads_every_key_without_geometry(tmp_path: Path, fetcher: Fetcher,
                                                     portal: RunningPortal) -> None:
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0), page_size=300),
                              fetcher, FetchStats(), retry=FAST_RETRY)
    keys = [k async for page in producer.keys("1=1") for k in page]
    assert len(set(keys)) == 1200


async def test_plans_round_trip_and_fingerprint_the_object_ids(tmp_path: Path,
                                                              fetcher: Fetcher,
                                                              portal: RunningPortal) -> None:
    portal.behaviours.pagination = False
    producer = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher,
                              FetchStats())
    plan = await producer.plan("1=1")
    assert FetchPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    portal.county.republish()
    next_run = ArcgisProducer(feed_config(tmp_path, portal.layer_url(0)), fetcher, FetchStats())
    assert (await next_run.plan("1=1")).fingerprint != plan.fingerprint
