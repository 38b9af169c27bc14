"""Cases placed on parcels through real runs: a parcels feed and a case feed of one county."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.case_helpers import EXAMPLE, PORT_IN_EXAMPLE, stored_cases, sync
from zoningsync.config import FeedConfig, load_source_file
from zoningsync.portal.county import County
from zoningsync.portal.server import RunningPortal, run_portal

# The county's parcel layer, in the same source file (so the same jurisdiction) as
# its cases, with the site address mapped for address matching.
PARCELS_FEED = """
[[feeds]]
id = "parcels"
kind = "parcels"
type = "arcgis"
url = "{layer}"
key = "PIN"
rate_limit = {{ requests_per_second = 100, burst = 100 }}
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
address = "SITE_ADDRESS"
"""




@pytest.fixture
async def portal() -> AsyncIterator[RunningPortal]:
    async with run_portal(County(600, seed=5)) as running:
        yield running


@pytest.fixture
async def linked(db_url: str, tmp_path: Path, portal: RunningPortal
                 ) -> dict[str, asyncpg.Record]:
    """The parcels, then the case list, synced; the cases as rezoning_cases shows them."""
    text = (EXAMPLE.read_text().replace(PORT_IN_EXAMPLE, portal.base_url)
            + PARCELS_FEED.format(layer=portal.layer_url(0)))
    source = tmp_path / "demo-county-cases.toml"
    source.write_text(text)
    feeds: dict[str, FeedConfig] = {f.id: f for f in load_source_file(source).feeds}
    summaries = await sync(db_url, tmp_path, feeds["parcels"], feeds["cases-html"])
    assert [s["status"] for s in summaries] == ["succeeded"] * 2, summaries
    conn = await asyncpg.connect(db_url)
    try:
        return await stored_cases(conn, feeds["cases-html"].full_id)
    finally:
        await conn.close()




async def test_cases_naming_known_parcel_ids_are_matched_by_id(
        linked: dict[str, asyncpg.Record], portal: RunningPortal) -> None:
    named = [t for t in portal.cases.expected() if t["parcel_ids"]]
    assert named
    for truth in named:
        case = linked[truth["case_number"]]
        known = [p for p in truth["parcel_ids"] if p not in truth["unknown_parcel_ids"]]
        assert case["match_method"] == "parcel_id"
        assert sorted(case["matched_parcel_ids"]) == sorted(known)


async def test_unknown_parcel_ids_are_kept_on_the_case(
        linked: dict[str, asyncpg.Record], portal: RunningPortal) -> None:
    unknown = [t for t in portal.cases.expected() if t["unknown_parcel_ids"]]
    assert unknown
    for truth in unknown:
        case = linked[truth["case_number"]]
        assert list(case["unmatched_parcel_ids"]) == truth["unknown_parcel_ids"]
        assert set(truth["parcel_ids"]) <= set(case["parcel_ids"])


async def test_cases_naming_only_an_address_are_matched_by_address(
        linked: dict[str, asyncpg.Record], portal: RunningPortal, db: asyncpg.Connection
        ) -> None:
    address_only = [t for t in portal.cases.expected() if not t["parcel_ids"]]
    assert address_only
    for truth in address_only:
        case = linked[truth["case_number"]]
        assert case["match_method"] == "address", truth
        addresses = await db.fetch(
            "SELECT DISTINCT address FROM zoningsync.parcels WHERE parcel_id = ANY($1)",
            list(case["matched_parcel_ids"]))
        assert [a["address"].strip() for a in addresses] == [truth["address"]]


async def test_the_geometry_of_a_case_is_the_union_of_its_matched_parcels(
        linked: dict[str, asyncpg.Record], db: asyncpg.Connection) -> None:
    mismatched = await db.fetchval(
        """SELECT count(*) FROM zoningsync.rezoning_cases c
           WHERE c.match_method <> 'none' AND NOT ST_Equals(c.geom, (
               SELECT ST_Union(p.geom) FROM zoningsync.parcels p
               WHERE p.jurisdiction = c.jurisdiction
                 AND p.parcel_id = ANY(c.matched_parcel_ids)))""")
    assert mismatched == 0
    assert await db.fetchval(
        "SELECT count(*) FROM zoningsync.rezoning_cases WHERE geom IS NULL") == 0
