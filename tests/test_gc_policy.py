"""The cyclic collector stays out of the way of page parsing."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from zoningsync.gc_policy import tune_for_bulk_parsing
from zoningsync.portal.behaviours import Behaviours
from zoningsync.portal.county import County
from zoningsync.portal.query import run_query


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.fixture(scope="module")
def page_body() -> bytes:
    county = County(parcels=2000, seed=3)
    return run_query(county, county.parcels,
                     {"where": "1=1", "outFields": "*", "f": "json"}, Behaviours())


def collections_while(work: Any) -> list[int]:
    """The generations the collector visited while `work()` ran."""
    generations: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    gc.callbacks.append(note)
    try:
        work()
    finally:
        gc.callbacks.remove(note)
    return generations


def test_a_page_of_two_thousand_parcels_decodes_without_any_collection(
        restored_gc: None, page_body: bytes) -> None:
    tune_for_bulk_parsing()
    kept: list[Any] = []
    assert collections_while(lambda: kept.append(orjson.loads(page_body))) == []
    assert len(kept[0]["features"]) == 2000


def test_cycles_are_still_collected(restored_gc: None) -> None:
    tune_for_bulk_parsing()

    class Node:
        peer: Any = None

    def make_cycles() -> None:
        for _ in range(60_000):
            a, b = Node(), Node()
            a.peer, b.peer = b, a

    assert 0 in collections_while(make_cycles)
