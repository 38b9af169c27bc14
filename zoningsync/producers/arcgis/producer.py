"""The ArcGIS REST producer: talks only to one layer URL and yields pages of records.

It reads the layer's metadata, counts and lists object ids, plans the read
(offset paging when the server pages, object-id batches otherwise) and fetches
the plan's pages a few at a time within the host's budget (`paging.py` repairs
what servers get wrong). It knows nothing of the database.

Each kind of request has its own answer cap, so that a server streaming an
endless body costs a few MiB, not the fetcher's ceiling: metadata and counts
are kilobytes (the recorded layers' metadata is 4-6 KB), an id list grows with
the layer (1M nine-digit ids take 9.5 MiB), and a page grows with its size.
Numbers the server answers (counts, ids) are checked before a plan is built
from them.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import orjson
import structlog

from zoningsync.config import FeedConfig
from zoningsync.errors import FetchError, SourceConfigError, UpstreamRefused
from zoningsync.http import AnswerTooBig, BadAnswer, Fetcher, FetchStats, HostLimits, RetryPolicy
from zoningsync.producers.arcgis.answers import answer_check
from zoningsync.producers.arcgis.changes import (
    ChangeSet,
    ChangeTracking,
    extract_check,
    extract_params,
    job_status,
    parse_change_tracking,
    parse_extract,
    service_of,
)
from zoningsync.producers.arcgis.decode import decode_features
from zoningsync.producers.arcgis.fields import FieldMap
from zoningsync.producers.arcgis.layer import LayerInfo, parse_layer
from zoningsync.producers.arcgis.paging import Fetched, PageSize, PlanReader
from zoningsync.producers.arcgis.plan import FetchPlan, PageSpec, Strategy, offset_plan, oid_plan
from zoningsync.records import FetchedPage
from zoningsync.redact import register_secret

log = structlog.get_logger(__name__)

# Longer GET URLs are sent as POST forms: proxies and old IIS front ends cut near 2 KB.
MAX_GET_URL = 1800
PAGES_IN_FLIGHT = 4
METADATA_MAX_BYTES = 4 * 2**20  # layer metadata and counts
IDS_MAX_BYTES = 64 * 2**20  # room for about 6.5M nine-digit object ids
# A parcel is about 1 KB, a zoning district tens of KB. A page of the default
# 2,000 features may take 64 MiB; PAGES_IN_FLIGHT such pages are the most that
# endless bodies can make a run hold. Small pages of large districts get the floor.
PAGE_BYTES_PER_FEATURE = 32 * 1024
PAGE_MIN_BYTES = 16 * 2**20
# More features than any layer holds (the whole US has about 155M parcels): a
# count above it is a broken server, and planning its pages would exhaust memory.
MAX_LAYER_FEATURES = 500_000_000
# An extractChanges answer with features holds at most the server's transfer
# limit of them (a larger one is asked again as ids); ids-only answers grow like
# an id list.
EXTRACT_MAX_BYTES = 256 * 2**20
# An asynchronous extract is polled after 0.25 s, then ever less often (up to
# every 8 s), for about 10 minutes in all.
JOB_FIRST_POLL_S = 0.25
JOB_MAX_POLL_S = 8.0
JOB_POLLS = 80
SERVICE_RETRIES = 1


def _edit_dialects(field: str, mark: datetime) -> tuple[str, ...]:
    """Ways to say "edited after `mark`", in the order servers are asked."""
    moment = mark.astimezone(UTC)
    return (
        f"{field} > TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')}'",
        f"{field} > {int(moment.timestamp() * 1000)}",
    )


class ArcgisProducer:
    def __init__(self, feed: FeedConfig, fetcher: Fetcher, stats: FetchStats, *,
                 retry: RetryPolicy | None = None) -> None:
        """`retry` defaults to the feed's retries and timeout with the fetcher's backoff."""
        self.feed = feed
        self.fetcher = fetcher
        self.stats = stats
        self.retry = retry or RetryPolicy(max_retries=feed.max_retries, timeout_s=feed.timeout_s)
        self.query_url = feed.url.rstrip("/") + "/query"
        # The feed's politeness budget binds its host (the stricter of two feeds' wins).
        fetcher.set_host_limits(urlsplit(feed.url).netloc, HostLimits(
            feed.rate_limit.requests_per_second, feed.rate_limit.burst))
        # Object ids the server listed but never returned, over this producer's life.
        self.missing_oids = 0
        self._layer: LayerInfo | None = None
        self._layer_lock = asyncio.Lock()  # deciding requests in flight ask for it at once
        self._layer_failed: Exception | None = None
        self._layer_meta: Mapping[str, Any] = {}
        self.service_read = False  # whether the service root answered (change_tracking)
        self._fields: FieldMap | None = None
        self._size: PageSize | None = None
        self._page_max_bytes = PAGE_MIN_BYTES
        self._dialect = 0  # index of the first edit-date dialect the server may accept
        self._object_ids: dict[str, list[int]] = {}
        self._counts: dict[str, int] = {}

    # -- requests -------------------------------------------------------------------

    def _token(self) -> dict[str, str]:
        if self.feed.token_env is None:
            return {}
        token = os.environ.get(self.feed.token_env)
        if not token:
            raise SourceConfigError(
                f"{self.feed.source_file}: feeds.{self.feed.id}.token_env: the environment "
                f"variable {self.feed.token_env} is not set; export the ArcGIS token there")
        register_secret(token)  # hidden wherever a server or a message repeats it
        return {"token": token}

    async def _call(self, url: str, params: Mapping[str, str], expect: str, max_bytes: int,
                    decode: Callable[[bytes | bytearray], Any] = orjson.loads, *,
                    check: Callable[[Any], None] | None = None, post: bool = False,
                    retry: RetryPolicy | None = None) -> Any:
        full = {"f": "json", **params, **self._token()}
        check = check or answer_check(expect, self.feed.token_env)
        retry = retry or self.retry
        if post or len(url) + 1 + len(urlencode(full)) > MAX_GET_URL:
            return await self.fetcher.post_json(url, full, retry=retry, stats=self.stats,
                                                check=check, decode=decode,
                                                max_bytes=max_bytes)
        return await self.fetcher.get_json(url, full, retry=retry, stats=self.stats,
                                           check=check, decode=decode, max_bytes=max_bytes)

    async def _query(self, params: Mapping[str, str]) -> Mapping[str, Any]:
        try:
            answer: Mapping[str, Any] = await self._call(
                self.query_url, params, "features", self._page_max_bytes, decode_features)
        except AnswerTooBig as exc:
            raise AnswerTooBig(
                f"{exc.message}; if the layer's features really are this large, lower "
                f"feeds.{self.feed.id}.page_size in {self.feed.source_file}") from None
        return answer

    # -- the layer ------------------------------------------------------------------

    async def layer(self) -> LayerInfo:
        """The layer's metadata, fetched once; the feed's field names checked against it."""
        if self._layer is None:
            async with self._layer_lock:
                if self._layer_failed is not None:  # asked once: a second ask fails alike
                    raise self._layer_failed
                if self._layer is None:
                    try:
                        await self._read_layer()
                    except Exception as exc:
                        self._layer_failed = exc
                        raise
        assert self._layer is not None
        return self._layer

    async def _read_layer(self) -> None:
        """Ask for the layer's metadata and resolve the feed's fields against it."""
        meta = await self._call(self.feed.url, {}, "", METADATA_MAX_BYTES)
        layer = parse_layer(self.feed.url, meta)
        self._layer_meta = meta
        real = {name.lower(): name for name in layer.fields}
        key = tuple(self._resolve(real, "key", name, layer) for name in self.feed.key)
        canonical = {c: self._resolve(real, f"fields.{c}", upstream, layer)
                     for c, upstream in self.feed.fields.items()}
        self._fields = FieldMap(field_types=layer.fields, oid_field=layer.oid_field,
                                canonical=canonical, key=key,
                                edit_date_field=layer.edit_date_field)
        self._size = PageSize(min(self.feed.page_size, layer.max_record_count))
        self._page_max_bytes = max(PAGE_MIN_BYTES, self._size.value * PAGE_BYTES_PER_FEATURE)
        self._layer = layer

    def _resolve(self, real: Mapping[str, str], key: str, name: str, layer: LayerInfo) -> str:
        """The layer's spelling of a configured field (ArcGIS field names ignore case)."""
        found = real.get(name.lower())
        if found is None:
            raise SourceConfigError(
                f"{self.feed.source_file}: feeds.{self.feed.id}.{key}: the layer {layer.url} "
                f"has no field '{name}'; its fields are {', '.join(layer.fields)}")
        return found

    def _field_map(self) -> FieldMap:
        if self._fields is None:
            raise RuntimeError("ArcgisProducer: await layer() before reading records")
        return self._fields

    def source_key(self, attributes: Mapping[str, Any]) -> str | None:
        """The feed's key of one upstream feature: the one rule pages() and keys() share."""
        return self._field_map().source_key(attributes)

    # -- counting -------------------------------------------------------------------

    async def count(self, where: str) -> int:
        """How many features `where` selects, asked once per producer (one run) and clause.

        A clause whose ids were listed is counted from its list: planning an offset
        read of the edited features must not ask the server what it just answered.
        """
        if where in self._object_ids:
            return len(self._object_ids[where])
        if where not in self._counts:
            answer = await self._call(
                self.query_url, {"where": where, "returnCountOnly": "true"}, "count",
                METADATA_MAX_BYTES)
            count: int = answer["count"]  # an integer: the answer check saw to it
            if not 0 <= count <= MAX_LAYER_FEATURES:
                raise UpstreamRefused(
                    f"{self.query_url}: the server counts {count} features for {where!r}; "
                    f"no layer holds fewer than 0 or more than {MAX_LAYER_FEATURES}")
            self._counts[where] = count
        return self._counts[where]

    async def object_ids(self, where: str) -> list[int]:
        """The object ids `where` selects, asked once per producer (one run) and clause.

        A run needs them to plan, to fingerprint the OID set and to reconcile; the
        list of a large layer is megabytes, so it is fetched once and reused.
        """
        if where not in self._object_ids:
            answer = await self._call(self.query_url,
                                      {"where": where, "returnIdsOnly": "true"}, "objectIds",
                                      IDS_MAX_BYTES)
            oids = answer["objectIds"] or []
            if not all(type(oid) is int for oid in oids):
                wrong = next(oid for oid in oids if type(oid) is not int)
                raise UpstreamRefused(
                    f"{self.query_url}: the server lists an object id that is not an "
                    f"integer ({str(wrong)[:40]!r}) for {where!r}")
            self._object_ids[where] = sorted(oids)
        return self._object_ids[where]

    async def edited_since(self, mark: datetime, *, list_ids: bool = False
                           ) -> tuple[str, int] | None:
        """A where clause for features edited after `mark`, and how many there are.

        Standardized SQL first, then epoch milliseconds; the dialect that worked is
        remembered (two of these may be in flight at once, each trying on its own).
        With `list_ids` the clause's object ids are listed rather than counted, so
        the run that reads and reconciles those features asks nothing more about them.
        None when the layer tracks no edits or the server refuses both: the caller
        reads the whole layer instead.
        """
        field = (await self.layer()).edit_date_field
        if field is None:
            return None
        dialects = _edit_dialects(field, mark)
        index = self._dialect
        while index < len(dialects):
            clause = dialects[index]
            where = clause if self.feed.where == "1=1" else f"({self.feed.where}) AND {clause}"
            try:
                if list_ids:
                    return where, len(await self.object_ids(where))
                return where, await self.count(where)
            except UpstreamRefused as exc:
                log.info("the server refused an edit-date query", where=clause,
                         error=exc.message)
                index += 1
                self._dialect = max(self._dialect, index)
        return None

    # -- change tracking --------------------------------------------------------------

    async def change_tracking(self) -> ChangeTracking | None:
        """The layer's change tracking, read from its service root now (not cached).

        A service root that cannot be read, or says nothing usable, means none:
        the run uses the edit-date strategy rather than fail.
        """
        located = service_of(self.feed.url)
        if located is None:
            return None
        service_url, layer_id = located
        # The layer's metadata and the service root are asked at once: a re-sync's
        # deciding requests go out together rather than one after another.
        service, _ = await asyncio.gather(self._service_root(service_url), self.layer())
        if service is None:
            return None
        self.service_read = True
        return parse_change_tracking(service_url, layer_id, service, self._layer_meta)

    async def _service_root(self, service_url: str) -> Any:
        """The service root's answer, or None when it cannot be read."""
        try:
            # Only a hint: a root that fails twice is not worth the feed's full retries.
            return await self._call(service_url, {}, "", METADATA_MAX_BYTES,
                                    retry=replace(self.retry, max_retries=SERVICE_RETRIES))
        except FetchError as exc:
            log.info("the service root cannot be read; no change tracking",
                     service=service_url, error=exc.message)
            return None

    async def extract_changes(self, tracking: ChangeTracking, generation: int) -> ChangeSet:
        """What changed since `generation`: features inline, or ids when there are too many.

        Raises GenerationExpired when the server keeps no changes that old.
        """
        changes = await self._extract(tracking, generation, ids_only=False)
        if changes.exceeded:
            log.info("the changes exceed the server's transfer limit; asking for ids",
                     service=tracking.service_url, since=generation)
            changes = await self._extract(tracking, generation, ids_only=True)
        return changes

    async def _extract(self, tracking: ChangeTracking, generation: int, *, ids_only: bool
                       ) -> ChangeSet:
        url = tracking.service_url + "/extractChanges"
        answer = await self._call(
            url, extract_params(tracking.layer_id, generation, ids_only=ids_only), "",
            EXTRACT_MAX_BYTES, check=extract_check(self.feed.token_env), post=True)
        if "statusUrl" in answer and "edits" not in answer:
            answer = await self._job_result(str(answer["statusUrl"]))
        try:
            return parse_extract(answer, tracking.layer_id)
        except BadAnswer as exc:
            raise UpstreamRefused(f"{url}: unusable extractChanges answer: {exc}") from None

    async def _job_result(self, status_url: str) -> Any:
        """Poll an asynchronous extract until its result is ready, less often each time."""
        self._same_host(status_url)
        delay = JOB_FIRST_POLL_S
        for _ in range(JOB_POLLS):
            await asyncio.sleep(delay)
            delay = min(JOB_MAX_POLL_S, delay * 2)
            status, result_url = job_status(
                await self._call(status_url, {}, "", METADATA_MAX_BYTES))
            if status in ("failed", "esrijobfailed", "cancelled"):
                raise UpstreamRefused(f"{status_url}: the asynchronous extract {status}")
            if status in ("completed", "esrijobsucceeded") and result_url:
                self._same_host(result_url)
                return await self._call(result_url, {}, "", EXTRACT_MAX_BYTES,
                                        check=extract_check(self.feed.token_env))
        raise FetchError(f"{status_url}: the asynchronous extract did not finish after "
                         f"{JOB_POLLS} polls; the next sync asks again")

    def _same_host(self, url: str) -> None:
        """Job URLs get the feed's token: only on the feed's own host."""
        if urlsplit(url).netloc.lower() != self.feed.host.lower():
            raise UpstreamRefused(
                f"{self.feed.url}: the server points an asynchronous extract at another "
                f"host ({urlsplit(url).netloc[:80]}); zoningsync does not follow it there")

    def changed_page(self, changes: ChangeSet, page_id: str) -> FetchedPage:
        """An extract's inline features as one page, read like a query's."""
        layer, fields = self._layer, self._field_map()
        assert layer is not None
        return FetchedPage(page_id, changes.features or [], changes.crs or layer.crs,
                           fields.records, "esrijson")

    # -- planning -------------------------------------------------------------------

    async def plan(self, where: str, strategy: Literal["auto", "offset", "oids"] = "auto"
                   ) -> FetchPlan:
        """How to read `where`: offset ranges when the server pages, else object id batches."""
        layer = await self.layer()
        chosen: Strategy
        if strategy == "auto":
            chosen = "offset" if layer.supports_pagination else "oids"
        else:
            chosen = strategy
        size = self._page_size()
        if chosen == "offset":
            return offset_plan(where, await self.count(where), size)
        return oid_plan(where, await self.object_ids(where), size)

    def plan_for_oids(self, oids: Sequence[int], *, prefix: str) -> FetchPlan:
        """A plan that asks for exactly these objects (to fill gaps after a shortfall)."""
        return oid_plan(self.feed.where, oids, self._page_size(), prefix=prefix)

    def _page_size(self) -> int:
        if self._size is None:
            raise RuntimeError("ArcgisProducer: await layer() before planning")
        return self._size.value

    # -- reading --------------------------------------------------------------------

    async def pages(self, plan: FetchPlan, done: Collection[str] = ()
                    ) -> AsyncIterator[FetchedPage]:
        """The plan's pages not in `done`, each yielded as soon as it is complete."""
        layer = await self.layer()
        fields = self._field_map()
        async for spec, fetched in self._read(plan, done, keys_only=False):
            yield FetchedPage(spec.page_id, fetched.features, fetched.crs or layer.crs,
                              fields.records, "esrijson")

    async def keys(self, where: str) -> AsyncIterator[list[str | None]]:
        """Every key the layer holds for `where`, page by page, for the deletion diff."""
        await self.layer()
        fields = self._field_map()
        async for _, fetched in self._read(await self.plan(where), (), keys_only=True):
            try:
                keys = [fields.source_key(f.get("attributes") or {}) for f in fetched.features]
            except (AttributeError, TypeError):
                keys = [_key_or_none(fields, f) for f in fetched.features]
            yield keys

    async def keys_of(self, oids: Sequence[int]) -> dict[int, str | None]:
        """The keys these objects carry now (one small request), to check a stored id map."""
        layer = await self.layer()
        fields = self._field_map()
        found: dict[int, str | None] = {}
        async for _, fetched in self._read(self.plan_for_oids(oids, prefix="s"), (),
                                           keys_only=True):
            for feature in fetched.features:
                attributes = feature.get("attributes") or {}
                oid = attributes.get(layer.oid_field)
                if type(oid) is int:
                    found[oid] = _key_or_none(fields, feature)
        return found

    async def _read(self, plan: FetchPlan, done: Collection[str], *, keys_only: bool
                    ) -> AsyncIterator[tuple[PageSpec, Fetched]]:
        """Read pages concurrently; an offset plan's first page alone, as the reference."""
        layer = await self.layer()
        fields = self._field_map()
        if self._size is None:
            raise RuntimeError("ArcgisProducer: await layer() before reading")
        out_fields = ",".join(dict.fromkeys((*fields.key, layer.oid_field))) if keys_only else "*"
        reader = PlanReader(
            plan, oid_field=layer.oid_field, query=self._query, size=self._size,
            list_oids=self.object_ids, on_missing=self._count_missing,
            base={"where": plan.where, "outFields": out_fields,
                  "returnGeometry": "false" if keys_only else "true"})
        todo = deque(spec for spec in plan.pages if spec.page_id not in done)
        if plan.strategy == "offset" and todo:
            spec = todo.popleft()
            yield spec, await reader.read(spec)
        in_flight: set[asyncio.Task[tuple[PageSpec, Fetched]]] = set()
        try:
            while todo or in_flight:
                while todo and len(in_flight) < PAGES_IN_FLIGHT:
                    spec = todo.popleft()
                    in_flight.add(asyncio.create_task(self._read_spec(reader, spec),
                                                      name=f"arcgis-page-{spec.page_id}"))
                finished, in_flight = await asyncio.wait(
                    in_flight, return_when=asyncio.FIRST_COMPLETED)
                failed = [error for task in finished if (error := task.exception())]
                if failed:
                    raise failed[0]
                for task in finished:
                    yield task.result()
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _read_spec(self, reader: PlanReader, spec: PageSpec) -> tuple[PageSpec, Fetched]:
        return spec, await reader.read(spec)

    def _count_missing(self, oids: Sequence[int]) -> None:
        self.missing_oids += len(oids)


def _key_or_none(fields: FieldMap, feature: Any) -> str | None:
    """A feature's key, or None (no key) when the feature or its attributes are no object."""
    try:
        return fields.source_key(feature.get("attributes") or {})
    except (AttributeError, TypeError):
        return None
