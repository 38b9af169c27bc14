"""The ArcGIS REST producer: talks only to one layer URL and yields pages of records.

It reads the layer's metadata, counts and lists object ids, plans the read
(offset paging when the server pages reliably, object-id batches otherwise),
fetches pages concurrently within the host's budget and repairs silent caps by
asking for the rest of a short page. It knows nothing of the database.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import structlog

from zoningsync.config import FeedConfig
from zoningsync.errors import SourceConfigError, UpstreamRefused
from zoningsync.http import Fetcher, FetchStats, HostLimits, RetryPolicy
from zoningsync.producers.arcgis.answers import answer_check
from zoningsync.producers.arcgis.fields import FieldMap
from zoningsync.producers.arcgis.layer import LayerInfo, parse_layer
from zoningsync.producers.arcgis.plan import FetchPlan, PageSpec, Strategy, offset_plan, oid_plan
from zoningsync.records import CrsSpec, Page, SourceRecord

log = structlog.get_logger(__name__)

MAX_GET_URL = 1800
PAGES_IN_FLIGHT = 4


class ArcgisProducer:
    def __init__(self, feed: FeedConfig, fetcher: Fetcher, stats: FetchStats) -> None:
        self.feed = feed
        self.fetcher = fetcher
        self.stats = stats
        self.retry = RetryPolicy(max_retries=feed.max_retries, timeout_s=feed.timeout_s)
        fetcher.set_host_limits(feed.host, HostLimits(feed.rate_limit.requests_per_second,
                                                      feed.rate_limit.burst))
        self.query_url = feed.url + "/query"
        self.missing_oids = 0
        self._layer: LayerInfo | None = None
        self._fields: FieldMap | None = None
        self._page_cap: int | None = None

    # -- requests -------------------------------------------------------------------

    def _token(self) -> dict[str, str]:
        if self.feed.token_env is None:
            return {}
        token = os.environ.get(self.feed.token_env)
        if not token:
            raise SourceConfigError(
                f"{self.feed.source_file}: feeds.{self.feed.id}.token_env: the environment "
                f"variable {self.feed.token_env} is not set; export the ArcGIS token there")
        return {"token": token}

    async def _call(self, url: str, params: Mapping[str, str], expect: str) -> Any:
        full = {"f": "json", **params, **self._token()}
        check = answer_check(expect, self.feed.token_env)
        if len(url) + len(urlencode(full)) > MAX_GET_URL:
            return await self.fetcher.post_json(url, full, retry=self.retry, stats=self.stats,
                                                check=check)
        return await self.fetcher.get_json(url, full, retry=self.retry, stats=self.stats,
                                           check=check)

    async def layer(self) -> LayerInfo:
        if self._layer is None:
            meta = await self._call(self.feed.url, {}, "fields")
            layer = parse_layer(self.feed.url, meta)
            self._validate_fields(layer)
            self._layer = layer
            self._fields = FieldMap(
                field_types=layer.fields, oid_field=layer.oid_field,
                canonical=self.feed.fields, key=self.feed.key,
                edit_date_field=layer.edit_date_field)
        return self._layer

    def _validate_fields(self, layer: LayerInfo) -> None:
        known = {name.lower() for name in layer.fields}
        named = [("key", name) for name in self.feed.key] + [
            (f"fields.{canonical}", upstream) for canonical, upstream in self.feed.fields.items()]
        for key, upstream in named:
            if upstream.lower() not in known:
                raise SourceConfigError(
                    f"{self.feed.source_file}: feeds.{self.feed.id}.{key}: the layer has no "
                    f"field '{upstream}'; its fields are {', '.join(layer.fields)}")

    async def count(self, where: str) -> int:
        answer = await self._call(self.query_url, {"where": where, "returnCountOnly": "true"},
                                  "count")
        return int(answer["count"])

    async def object_ids(self, where: str) -> list[int]:
        answer = await self._call(self.query_url, {"where": where, "returnIdsOnly": "true"},
                                  "objectIds")
        return sorted(int(oid) for oid in answer.get("objectIds") or [])

    # -- incremental ------------------------------------------------------------------

    async def edited_since(self, mark: datetime) -> tuple[str, int] | None:
        """A where clause for features edited after `mark`, and their count.

        Standardized SQL first, then epoch milliseconds; None when the server refuses
        both (the caller reads the whole layer instead).
        """
        layer = await self.layer()
        field = layer.edit_date_field
        if field is None:
            return None
        moment = mark.astimezone(UTC)
        candidates = (
            f"{field} > TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')}'",
            f"{field} > {int(moment.timestamp() * 1000)}",
        )
        for clause in candidates:
            where = clause if self.feed.where == "1=1" else f"({self.feed.where}) AND {clause}"
            try:
                return where, await self.count(where)
            except UpstreamRefused as exc:
                log.info("server refused an edit-date query", where=clause, error=exc.message)
        return None

    # -- planning ---------------------------------------------------------------------

    def _page_size(self, layer: LayerInfo) -> int:
        size = min(self.feed.page_size, layer.max_record_count)
        return min(size, self._page_cap) if self._page_cap else size

    async def plan(self, where: str, strategy: str = "auto") -> FetchPlan:
        layer = await self.layer()
        chosen: Strategy
        if strategy == "auto":
            chosen = "offset" if layer.supports_pagination else "oids"
        elif strategy in ("offset", "oids"):
            chosen = "oids" if strategy == "oids" else "offset"
        else:
            raise ValueError(f"unknown strategy {strategy}")
        size = self._page_size(layer)
        oids = await self.object_ids(where)
        if chosen == "offset" and not await self._offsets_work(where, oids):
            log.warning("server ignores resultOffset; reading by object id batches",
                        layer=self.feed.url)
            chosen = "oids"
        if chosen == "offset":
            return offset_plan(where, len(oids), size)
        return oid_plan(where, oids, size)

    async def _offsets_work(self, where: str, oids: Sequence[int]) -> bool:
        """Probe: does `resultOffset=1` really skip the first object?"""
        if len(oids) < 2:
            return True
        layer = await self.layer()
        answer = await self._call(self.query_url, {
            "where": where, "outFields": layer.oid_field, "returnGeometry": "false",
            "orderByFields": f"{layer.oid_field} ASC", "resultOffset": "1",
            "resultRecordCount": "1"}, "features")
        features = answer["features"]
        if not features:
            return False
        attributes = features[0].get("attributes") or {}
        return attributes.get(layer.oid_field) == oids[1]

    def plan_for_oids(self, oids: Sequence[int], *, prefix: str) -> FetchPlan:
        """A plan that asks for exactly these objects (gap filling after a shortfall)."""
        assert self._layer is not None
        return oid_plan(f"{self._layer.oid_field} IN (...)", list(oids),
                        self._page_size(self._layer), prefix=prefix)

    # -- pages ------------------------------------------------------------------------

    async def pages(self, plan: FetchPlan, done: Collection[str] = ()) -> AsyncIterator[Page]:
        """Fetch the plan's pages, a few at a time, yielding each as soon as it is whole."""
        await self.layer()
        todo = deque(spec for spec in plan.pages if spec.page_id not in done)
        in_flight: set[asyncio.Task[Page]] = set()
        try:
            while todo or in_flight:
                while todo and len(in_flight) < PAGES_IN_FLIGHT:
                    spec = todo.popleft()
                    in_flight.add(asyncio.create_task(self._page(plan, spec, keys_only=False),
                                                      name=f"page-{spec.page_id}"))
                finished, in_flight = await asyncio.wait(
                    in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    yield task.result()
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def keys(self, where: str) -> AsyncIterator[list[str | None]]:
        """Every key the layer holds, page by page, for the deletion diff."""
        plan = await self.plan(where)
        for spec in plan.pages:
            page = await self._page(plan, spec, keys_only=True)
            yield [record.source_key for record in page.records]

    def source_key(self, attributes: Mapping[str, Any]) -> str | None:
        assert self._fields is not None, "call layer() first"
        return self._fields.source_key(attributes)

    async def _page(self, plan: FetchPlan, spec: PageSpec, *, keys_only: bool) -> Page:
        layer = await self.layer()
        base = {
            "where": plan.where if plan.strategy == "offset" else self.feed.where,
            "outFields": ",".join(self.feed.key) if keys_only else "*",
            "returnGeometry": "false" if keys_only else "true",
        }
        if plan.strategy == "offset":
            features, crs = await self._read_range(base, layer, spec, plan.expected)
        else:
            features, crs = await self._read_oids(base, layer, spec)
        assert self._fields is not None
        records: list[SourceRecord] = [self._fields.record(f) for f in features]
        return Page(spec.page_id, records, crs or layer.crs, "esrijson")

    async def _read_range(self, base: Mapping[str, str], layer: LayerInfo, spec: PageSpec,
                          expected: int) -> tuple[list[Any], CrsSpec | None]:
        """An offset page; a short answer before the end is a silent cap: ask for the rest."""
        assert spec.offset is not None and spec.limit is not None
        offset, wanted = spec.offset, spec.limit
        features: list[Any] = []
        crs: CrsSpec | None = None
        while wanted > 0:
            answer = await self._call(self.query_url, {
                **base, "orderByFields": f"{layer.oid_field} ASC",
                "resultOffset": str(offset), "resultRecordCount": str(wanted)}, "features")
            got = answer["features"]
            crs = crs or CrsSpec.from_esri(answer.get("spatialReference"))
            features.extend(got)
            if not got or len(got) >= wanted or offset + len(got) >= expected:
                break
            log.info("silent cap: page shorter than asked; fetching the rest",
                     page=spec.page_id, asked=wanted, got=len(got))
            self._page_cap = len(got)
            offset += len(got)
            wanted -= len(got)
        return features, crs

    async def _read_oids(self, base: Mapping[str, str], layer: LayerInfo, spec: PageSpec
                         ) -> tuple[list[Any], CrsSpec | None]:
        """An object-id batch; objects the server leaves out are asked for again."""
        wanted = list(spec.oids)
        features: list[Any] = []
        crs: CrsSpec | None = None
        while wanted:
            answer = await self._call(self.query_url, {
                **base, "objectIds": ",".join(map(str, wanted))}, "features")
            asked = set(wanted)
            got = [f for f in answer["features"]
                   if (f.get("attributes") or {}).get(layer.oid_field) in asked]
            crs = crs or CrsSpec.from_esri(answer.get("spatialReference"))
            features.extend(got)
            seen = {(f.get("attributes") or {}).get(layer.oid_field) for f in got}
            missing = [oid for oid in wanted if oid not in seen]
            if not got or not missing:
                self.missing_oids += len(missing)
                break
            log.info("silent cap: batch shorter than asked; fetching the rest",
                     page=spec.page_id, asked=len(wanted), got=len(got))
            wanted = missing
        return features, crs
