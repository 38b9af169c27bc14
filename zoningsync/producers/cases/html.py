"""County portal case lists: list pages (paginated), detail pages, linked PDFs.

A list page is read with the feed's `[feeds.html]` rules in the thread pool;
its rows become cases once their detail pages (if any) are merged in. The
layout guard stops a run whose list suddenly gives no rows, or rows without
case numbers, before anything is retired. An unchanged page is carried forward
from what the store kept of it, without re-parsing, once its rows' detail pages
answer unchanged too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import replace

from zoningsync.cases.build import CaseRow, finish_cases
from zoningsync.cases.html import layout_problem, read_case_page, read_detail_page
from zoningsync.cases.model import CaseRecord
from zoningsync.errors import FetchError
from zoningsync.producers.cases.base import ReadingProducer
from zoningsync.producers.cases.pdf import read_pdf_document
from zoningsync.producers.cases.port import CaseDocument


class LayoutChanged(FetchError):
    """The case list no longer looks like its selectors say; nothing was retired."""


class HtmlCaseProducer(ReadingProducer):
    async def documents(self, *, since: str | None) -> AsyncIterator[CaseDocument]:
        options = self.feed.cases
        assert options is not None and options.html is not None
        loop = asyncio.get_running_loop()
        url: str | None = self.feed.url
        seen: set[str] = set()
        pdfs: dict[str, None] = {}
        had_cases = await self.reader.memory.had_cases()
        while url is not None and url not in seen:
            if len(seen) >= options.html.max_pages:
                self.incomplete_because = (
                    f"max_pages = {options.html.max_pages} reached with {url} still to "
                    "read: the read was not complete, so no case was retired")
                return
            seen.add(url)
            read = await self.reader.read(url)
            if read.remembered is not None:
                known = read.remembered
                carried = await self._unchanged_details(known.cases)
                if carried is not None:
                    yield CaseDocument(url=url, etag=read.etag,
                                       last_modified=read.last_modified, sha256=read.sha256,
                                       cases=known.cases, links=known.links, unchanged=True)
                    for unchanged in carried:
                        yield unchanged
                    pdfs.update(dict.fromkeys(known.links.get("documents", [])))
                    url = known.links.get("next")
                    continue
                # A detail page changed under an unchanged list: its rows are read again.
                read = await self.reader.read(url, refresh=True)
            assert read.body is not None
            page = await loop.run_in_executor(None, functools.partial(
                read_case_page, read.body, url=read.url, content_type=read.content_type,
                options=options))
            problem = layout_problem(page, had_rows_before=had_cases or len(seen) > 1)
            if problem is not None:
                raise LayoutChanged(problem)
            rows: list[CaseRow] = []
            details: list[CaseDocument] = []
            for row in page.rows:
                detailed, detail = await self._with_detail(row)
                rows.append(detailed)
                if detail is not None:
                    details.append(detail)
            batch = await loop.run_in_executor(None, finish_cases, rows, options)
            documents = list(dict.fromkeys(
                [*page.document_urls, *(d for row in rows for d in row.document_urls)]))
            yield CaseDocument(
                url=url, etag=read.etag, last_modified=read.last_modified, sha256=read.sha256,
                size=len(read.body), content_type=read.content_type, cases=batch.cases,
                rejected=batch.rejected,
                links={"next": page.next_url, "documents": documents})
            for detail in details:
                yield detail
            pdfs.update(dict.fromkeys(documents))
            url = page.next_url
        if options.pdf is not None and (options.pdf.pattern is not None or options.pdf.table):
            for link in pdfs:
                yield await read_pdf_document(self.reader, link)
        self.complete = True

    async def _unchanged_details(self, cases: tuple[CaseRecord, ...]
                                 ) -> list[CaseDocument] | None:
        """The detail pages of an unchanged list page's cases, if none of them changed.

        A county edits a case's own page (a decision date, a new agenda link)
        without touching its list row, so each detail page is asked again
        (conditionally: a 304 costs no parse); None when one of them changed.
        """
        options = self.feed.cases
        assert options is not None
        if options.html is None or options.html.detail is None:
            return []
        found: list[CaseDocument] = []
        for case in cases:
            if case.detail_url is None:
                continue
            read = await self.reader.read(case.detail_url)
            if read.remembered is None:
                return None
            found.append(CaseDocument(url=read.url, etag=read.etag,
                                      last_modified=read.last_modified, sha256=read.sha256,
                                      links=read.remembered.links, unchanged=True,
                                      stage=False))
        return found

    async def _with_detail(self, row: CaseRow) -> tuple[CaseRow, CaseDocument | None]:
        """The row with its detail page's values, and that page as a document of its own.

        The detail page's own values (those it adds or changes) are what the store
        keeps of it, so an unchanged detail page is merged in without re-parsing.
        """
        options = self.feed.cases
        assert options is not None
        if row.detail_url is None or options.html is None or options.html.detail is None:
            return row, None
        read = await self.reader.read(row.detail_url)
        if read.remembered is not None:
            known = read.remembered.links
            merged = replace(row, values={**row.values, **known.get("values", {})},
                             document_urls=tuple(dict.fromkeys(
                                 [*row.document_urls, *known.get("documents", [])])))
            return merged, CaseDocument(url=read.url, etag=read.etag,
                                        last_modified=read.last_modified, sha256=read.sha256,
                                        links=known, unchanged=True, stage=False)
        body = read.body or b""
        detailed = await asyncio.get_running_loop().run_in_executor(None, functools.partial(
            read_detail_page, body, url=read.url, content_type=read.content_type,
            options=options, row=row))
        own = {k: v for k, v in detailed.values.items() if row.values.get(k) != v}
        added = [d for d in detailed.document_urls if d not in row.document_urls]
        return detailed, CaseDocument(
            url=read.url, etag=read.etag, last_modified=read.last_modified, sha256=read.sha256,
            size=len(body), content_type=read.content_type,
            links={"values": own, "documents": added}, stage=False)
