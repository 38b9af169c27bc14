"""Shared helpers for tests that talk to the simulated portal or to recorded answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoningsync.config import FeedConfig, load_source_file
from zoningsync.producers.arcgis.plan import FetchPlan
from zoningsync.producers.arcgis.producer import ArcgisProducer
from zoningsync.records import Page

FIXTURES = Path(__file__).parent / "fixtures" / "arcgis"

FEED_TOML = """
[jurisdiction]
id = "test-county"

[[feeds]]
id = "{feed_id}"
kind = "{kind}"
type = "arcgis"
url = "{url}"
key = {key}
rate_limit = {{ requests_per_second = 500, burst = 500 }}
page_size = {page_size}
max_retries = {max_retries}
h3_resolution = {h3_resolution}
{extra}
[feeds.fields]
{fields}
"""

PARCEL_FIELDS = 'parcel_id = "PIN"\nzoning_code = "ZONING"\nzoning_desc = "ZONE_DESC"'


def feed_config(tmp_path: Path, url: str, *, feed_id: str = "parcels", kind: str = "parcels",
                key: str = '"PIN"', fields: str = PARCEL_FIELDS, page_size: int = 500,
                max_retries: int = 8, h3_resolution: int = 7, extra: str = "",
                **_: Any) -> FeedConfig:
    """A one-feed source file on disk (so errors can name it) and its FeedConfig."""
    directory = tmp_path / "sources"
    directory.mkdir(exist_ok=True)
    path = directory / "test-county.toml"
    path.write_text(FEED_TOML.format(
        feed_id=feed_id, kind=kind, url=url, key=key, page_size=page_size,
        max_retries=max_retries, h3_resolution=h3_resolution, extra=extra, fields=fields))
    return load_source_file(path).feeds[0]


async def read_all(producer: ArcgisProducer, plan: FetchPlan,
                   done: tuple[str, ...] = ()) -> list[Page]:
    return [page.read() async for page in producer.pages(plan, done)]
