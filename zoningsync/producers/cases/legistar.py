"""Legistar: matters paged with `$top`/`$skip`, incremental by `MatterLastModifiedUtc`.

A first read covers the `since_days` window and is complete; later reads ask
for matters modified since the newest `MatterLastModifiedUtc` the last success
saw (its `high_water_mark`), minus an overlap (Legistar does not always move
the modified date), and retire nothing. Attachments are read as PDFs
by the feed's `[feeds.pdf]` rules when it has them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from zoningsync.cases.legistar import (
    attachment_urls,
    attachments_url,
    latest_modified,
    matter_query,
    matters_url,
    read_matters,
    read_since,
)
from zoningsync.errors import FetchError
from zoningsync.producers.cases.base import ReadingProducer
from zoningsync.producers.cases.documents import PAGE_MAX_BYTES
from zoningsync.producers.cases.pdf import read_pdf_document
from zoningsync.producers.cases.port import CaseDocument

MAX_PAGES = 1000  # 1M matters: beyond any city's legislative record


class LegistarCaseProducer(ReadingProducer):
    async def documents(self, *, since: str | None) -> AsyncIterator[CaseDocument]:
        options = self.feed.cases
        assert options is not None and options.legistar is not None
        legistar = options.legistar
        last = datetime.fromisoformat(since) if since else None
        self.high_water_mark = last
        start = read_since(datetime.now(UTC), legistar, last)
        url = matters_url(self.feed.url, legistar.client)
        reads_attachments = options.pdf is not None and (
            options.pdf.pattern is not None or options.pdf.table)
        for page in range(MAX_PAGES):
            params = matter_query(page, legistar, since=start)
            matters = await self._json(url, params)
            if not isinstance(matters, list):
                raise FetchError(f"{url}: expected a JSON list of matters")
            batch = read_matters(matters, options)
            newest = latest_modified(matters)
            if newest is not None and (self.high_water_mark is None
                                       or newest > self.high_water_mark):
                self.high_water_mark = newest
            yield CaseDocument(url=f"{url}?$skip={params['$skip']}", cases=batch.cases,
                               rejected=batch.rejected, remember=False)
            if reads_attachments:
                for matter in matters:
                    for link in await self._attachments(matter):
                        yield await read_pdf_document(self.reader, link)
            if len(matters) < legistar.page_size:
                break
        else:
            raise FetchError(f"{url}: more than {MAX_PAGES} pages of matters; narrow "
                             "matter_types or since_days")
        # Only a read of the whole window sees every matter; an incremental one does not.
        self.complete = last is None
        if not self.complete:
            self.incomplete_because = (
                f"an incremental read (matters modified since {start.isoformat()}): "
                "no case was retired")

    async def _attachments(self, matter: Mapping[str, Any]) -> tuple[str, ...]:
        options = self.feed.cases
        assert options is not None and options.legistar is not None
        matter_id = matter.get("MatterId")
        if not isinstance(matter_id, int):
            return ()
        found = await self._json(
            attachments_url(self.feed.url, options.legistar.client, matter_id), {})
        return attachment_urls(found) if isinstance(found, list) else ()

    async def _json(self, url: str, params: Mapping[str, str]) -> Any:
        return await self.reader.fetcher.get_json(
            url, params, retry=self.reader.retry, stats=self.reader.stats,
            max_bytes=PAGE_MAX_BYTES)
