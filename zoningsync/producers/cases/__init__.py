"""Case producers: HTML portals, agenda PDFs, Legistar and custom parsers.

Each reads documents through the shared fetcher (conditional GETs, robots.txt)
and yields `CaseDocument`s: what one document gave. They know nothing of the
database; what they remember of a document reaches them through `DocumentMemory`.
"""

from __future__ import annotations

from zoningsync.config import FeedConfig
from zoningsync.http import Fetcher, FetchStats
from zoningsync.producers.cases.documents import DocumentReader
from zoningsync.producers.cases.html import HtmlCaseProducer
from zoningsync.producers.cases.legistar import LegistarCaseProducer
from zoningsync.producers.cases.parser import ParserCaseProducer
from zoningsync.producers.cases.pdf import PdfCaseProducer
from zoningsync.producers.cases.port import CaseDocument, CaseProducer, DocumentMemory

__all__ = ["CaseDocument", "CaseProducer", "DocumentMemory", "case_producer"]


def case_producer(feed: FeedConfig, fetcher: Fetcher, stats: FetchStats,
                  memory: DocumentMemory) -> CaseProducer:
    """The producer a case feed's `parser`, or else its `type`, names."""
    options = feed.cases
    assert options is not None, "a cases feed always has its options"
    reader = DocumentReader(feed, fetcher, stats, memory)
    if options.parser is not None:
        return ParserCaseProducer(feed, reader, options.parser)
    if options.type == "legistar":
        return LegistarCaseProducer(feed, reader)
    if options.type == "pdf":
        return PdfCaseProducer(feed, reader)
    return HtmlCaseProducer(feed, reader)
