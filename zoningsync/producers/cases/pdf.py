"""Agenda PDFs: the feed's url is the PDF, or an HTML page listing PDFs (`[feeds.pdf] documents`).

Each PDF is parsed in a child process killed at the feed's time limit
(`cases.pdf.read_pdf_bounded`); an unreadable one is a quarantined document,
and the run goes on with the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urljoin

from bs4 import Tag

from zoningsync.cases.html import parse_html
from zoningsync.cases.model import DocumentQuarantine
from zoningsync.cases.pdf import read_pdf_bounded
from zoningsync.http import AnswerTooBig
from zoningsync.producers.cases.base import ReadingProducer
from zoningsync.producers.cases.documents import DocumentReader
from zoningsync.producers.cases.port import CaseDocument

PDF_MAGIC = b"%PDF-"


async def read_pdf_document(reader: DocumentReader, url: str) -> CaseDocument:
    """One PDF as a CaseDocument: its cases, its quarantine, or its memory if unchanged."""
    options = reader.feed.cases
    assert options is not None
    limit = options.max_document_bytes
    try:
        read = await reader.read(url, max_bytes=limit + 1)
    except AnswerTooBig:
        return CaseDocument(url=url, quarantine=(
            DocumentQuarantine.TOO_LARGE.value,
            f"over max_document_mb = {options.max_document_mb:g}"))
    if read.remembered is not None:
        known = read.remembered
        return CaseDocument(url=url, etag=read.etag, last_modified=read.last_modified,
                            sha256=read.sha256, cases=known.cases,
                            quarantine=known.quarantine, unchanged=True)
    assert read.body is not None
    reading = await read_pdf_bounded(read.body, url=url, options=options)
    quarantine = ((reading.quarantine.value, reading.detail or reading.quarantine.value)
                  if reading.quarantine is not None else None)
    return CaseDocument(
        url=url, etag=read.etag, last_modified=read.last_modified, sha256=read.sha256,
        size=len(read.body), content_type=read.content_type, cases=reading.cases,
        rejected=reading.rejected, quarantine=quarantine, warnings=reading.warnings)


class PdfCaseProducer(ReadingProducer):
    async def documents(self, *, since: str | None) -> AsyncIterator[CaseDocument]:
        options = self.feed.cases
        assert options is not None
        selector = options.pdf.documents if options.pdf is not None else None
        if selector is None:
            yield await read_pdf_document(self.reader, self.feed.url)
            self.complete = True
            return
        index = await self.reader.read(self.feed.url)
        if index.remembered is not None:
            links = list(index.remembered.links.get("documents", []))
        else:
            assert index.body is not None
            soup = await asyncio.get_running_loop().run_in_executor(
                None, parse_html, index.body, index.content_type)
            links = _links(soup.select(selector), self.feed.url)
        yield CaseDocument(url=self.feed.url, etag=index.etag,
                           last_modified=index.last_modified, sha256=index.sha256,
                           links={"documents": links}, unchanged=index.unchanged)
        for link in links:
            yield await read_pdf_document(self.reader, link)
        self.complete = True


def _links(elements: Iterable[Tag], base: str) -> list[str]:
    """The absolute URLs the elements link to, each once, in page order."""
    found: dict[str, None] = {}
    for element in elements:
        href = element.get("href")
        if isinstance(href, str) and href.strip():
            found[urljoin(base, href.strip())] = None
    return list(found)
