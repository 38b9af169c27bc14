"""What a sync of each ArcGIS feed would do, asked of the server, not of the database.

`sources check --probe` reads each layer's metadata and count through the same
producer a run uses (same fetcher, rate limits and answer checks), and says how
the run would page it, in which CRS it comes, which field dates its edits and
whether a run could read only the edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoningsync.config import FeedConfig
from zoningsync.errors import describe_failure
from zoningsync.http import Fetcher, FetchStats
from zoningsync.producers.arcgis.producer import ArcgisProducer
from zoningsync.records import CrsSpec


def crs_name(crs: CrsSpec | None) -> str | None:
    if crs is None:
        return None
    code = crs.latest_wkid or crs.wkid
    return f"EPSG:{code}" if code else ("WKT" if crs.wkt else None)


async def probe_feed(feed: FeedConfig, fetcher: Fetcher) -> dict[str, Any]:
    """The feed's probe answer, or its one-line error (`ok` false)."""
    producer = ArcgisProducer(feed, fetcher, FetchStats())
    try:
        layer = await producer.layer()
        count = await producer.count(feed.where)
        plan = await producer.plan(feed.where)
    except Exception as exc:
        return {"feed": feed.full_id, "ok": False, "error": describe_failure(exc)}
    incremental = layer.edit_date_field is not None and feed.incremental != "off"
    return {"feed": feed.full_id, "ok": True, "strategy": plan.strategy, "count": count,
            "pages": len(plan.pages), "crs": crs_name(layer.crs),
            "edit_date_field": layer.edit_date_field, "incremental": incremental}


async def probe_feeds(feeds: Sequence[FeedConfig]) -> list[dict[str, Any]]:
    async with Fetcher() as fetcher:
        return [await probe_feed(feed, fetcher) for feed in feeds if feed.type == "arcgis"]
