"""Reading the pages of one fetch plan, whatever the server gets wrong.

ArcGIS servers fail quietly. A server may answer fewer rows than asked with no
sign of it (a *silent cap*: `exceededTransferLimit` is a hint that can lie both
ways), so a page is complete only when its whole range has arrived, and the page
size shrinks to what the server really answers. Old servers ignore `resultOffset`
and answer the first rows for every offset, so offset pages are checked against the
first page read and, when they repeat it, read by object id instead. Rows are never
skipped and never invented: object ids the server will not return are counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from zoningsync.producers.arcgis.plan import FetchPlan, PageSpec
from zoningsync.records import CrsSpec

log = structlog.get_logger(__name__)

Query = Callable[[Mapping[str, str]], Awaitable[Mapping[str, Any]]]
ListOids = Callable[[str], Awaitable[list[int]]]
OnMissing = Callable[[Sequence[int]], None]


@dataclass
class PageSize:
    """The largest request the server really answers in full."""

    value: int

    def lower(self, answered: int) -> None:
        if 0 < answered < self.value:
            log.info("silent cap: the server answers fewer rows than asked; asking for less",
                     page_size=answered, was=self.value)
            self.value = answered


@dataclass
class Fetched:
    """The features of one complete page, the CRS its answers declared, their OIDs."""

    features: list[Mapping[str, Any]]
    crs: CrsSpec | None
    oids: set[int]


def feature_oid(feature: Mapping[str, Any], oid_field: str) -> int | None:
    """The feature's object id, if it has an integral one (read for every feature).

    A feature that is not even an object (a server's null) has none: the page
    keeps it, and the prepare stage quarantines it.
    """
    try:
        attributes = feature.get("attributes")
    except AttributeError:
        return None
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        return None
    value = attributes.get(oid_field)
    return value if type(value) is int else None  # a bool is not an object id


class PlanReader:
    """Reads the pages of one plan; pages share what was learned about the server.

    For offset plans, the first page read is the reference: read it alone, before
    the others, so that later pages can be checked against it.
    """

    def __init__(self, plan: FetchPlan, *, oid_field: str, base: Mapping[str, str],
                 query: Query, size: PageSize, list_oids: ListOids,
                 on_missing: OnMissing) -> None:
        self.plan = plan
        self.oid_field = oid_field
        self.base = dict(base)
        self.query = query
        self.size = size
        self.list_oids = list_oids
        self.on_missing = on_missing
        self._reference: tuple[int, int] | None = None  # offset and highest oid of page one
        self._offsets_ignored = False
        self._oids: list[int] | None = None

    async def read(self, spec: PageSpec) -> Fetched:
        if self.plan.strategy == "oids":
            return await self._read_oids(spec.oids)
        if self._offsets_ignored:
            return await self._read_slice(spec)
        fetched = await self._read_range(spec)
        if await self._repeats_reference(spec, fetched):
            if not self._offsets_ignored:
                log.warning("the server ignores resultOffset; reading the rest by object id",
                            page=spec.page_id)
                self._offsets_ignored = True
            return await self._read_slice(spec)
        return fetched

    # -- offset pages ---------------------------------------------------------------

    async def _read_range(self, spec: PageSpec) -> Fetched:
        """Rows [offset, offset + limit): ask again for the rest of a short answer."""
        offset, limit = spec.offset or 0, spec.limit or self.plan.page_size
        end = offset + limit
        in_range = min(end, self.plan.expected)  # the last page may hold fewer rows
        kept = _Collector(self.oid_field)
        position = offset
        while position < end:
            asked = min(end - position, self.size.value)
            answer = await self.query({
                **self.base, "orderByFields": f"{self.oid_field} ASC",
                "resultOffset": str(position), "resultRecordCount": str(asked)})
            got = answer["features"]
            kept.add(got, answer)
            position += len(got)
            if not got:
                if position < in_range:
                    log.warning("the server answered no rows inside a page's range",
                                page=spec.page_id, offset=position, expected=in_range)
                break
            if len(got) < asked:
                if position >= in_range:
                    break  # the layer ends inside this page
                self.size.lower(len(got))
        return kept.fetched()

    async def _repeats_reference(self, spec: PageSpec, fetched: Fetched) -> bool:
        oids = fetched.oids
        if not oids:
            return False
        offset = spec.offset or 0
        if self._reference is None:
            if offset > 0 and min(oids) <= await self._first_oid():
                return True
            self._reference = (offset, max(oids))
            return False
        reference_offset, reference_high = self._reference
        return offset > reference_offset and min(oids) <= reference_high

    async def _first_oid(self) -> int:
        answer = await self.query({
            **self.base, "outFields": self.oid_field, "returnGeometry": "false",
            "orderByFields": f"{self.oid_field} ASC", "resultOffset": "0",
            "resultRecordCount": "1"})
        oids = [oid for f in answer["features"]
                if (oid := feature_oid(f, self.oid_field)) is not None]
        return min(oids, default=-1)

    async def _read_slice(self, spec: PageSpec) -> Fetched:
        """An offset page read by object id: row n of the OID-ordered layer is oids[n]."""
        if self._oids is None:
            self._oids = await self.list_oids(self.plan.where)
        offset, limit = spec.offset or 0, spec.limit or self.plan.page_size
        last = offset + limit >= self.plan.expected
        return await self._read_oids(self._oids[offset:] if last
                                     else self._oids[offset:offset + limit])

    # -- object id batches ----------------------------------------------------------

    async def _read_oids(self, oids: Sequence[int]) -> Fetched:
        """Every object in `oids`, in requests the server answers in full.

        Ids above the highest one answered were cut by a cap: ask for them again.
        Ids below it were skipped by the server: ask once more, then count them.
        """
        kept = _Collector(self.oid_field)
        remaining = list(oids)
        skipped: list[int] = []
        while remaining:
            batch, remaining = remaining[:self.size.value], remaining[self.size.value:]
            answered = await self._ask_ids(batch, kept)
            if not answered:
                skipped.extend(batch)
                continue
            top = max(answered)
            left = [oid for oid in batch if oid not in kept.seen]
            skipped.extend(oid for oid in left if oid < top)
            cut = [oid for oid in left if oid > top]
            if cut:
                self.size.lower(len(answered))
                remaining = cut + remaining
        for start in range(0, len(skipped), self.size.value):
            await self._ask_ids(skipped[start:start + self.size.value], kept)
        missing = [oid for oid in skipped if oid not in kept.seen]
        if missing:
            log.warning("the server did not return some listed objects", count=len(missing),
                        sample=missing[:10])
            self.on_missing(missing)
        return kept.fetched()

    async def _ask_ids(self, batch: Sequence[int], kept: _Collector) -> list[int]:
        wanted = set(batch)
        answer = await self.query({**self.base, "objectIds": ",".join(map(str, batch))})
        return kept.add((f for f in answer["features"]
                         if feature_oid(f, self.oid_field) in wanted), answer)


class _Collector:
    """The features of one page so far, each object once."""

    def __init__(self, oid_field: str) -> None:
        self.oid_field = oid_field
        self.features: list[Mapping[str, Any]] = []
        self.seen: set[int] = set()
        self.crs: CrsSpec | None = None

    def add(self, features: Iterable[Mapping[str, Any]], answer: Mapping[str, Any]
            ) -> list[int]:
        """Keep the features not seen yet; the object ids of all of them, new or not."""
        self.crs = self.crs or CrsSpec.from_esri(answer.get("spatialReference"))
        answered = []
        for feature in features:
            oid = feature_oid(feature, self.oid_field)
            if oid is not None:
                answered.append(oid)
                if oid in self.seen:
                    continue
                self.seen.add(oid)
            self.features.append(feature)
        return answered

    def fetched(self) -> Fetched:
        return Fetched(self.features, self.crs, self.seen)
