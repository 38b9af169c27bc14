"""A feed read by its custom parser (`parser = "package.module:function"`).

The feed's page is read like any other document (robots.txt, conditional GET)
and handed to the function in the thread pool; an unchanged page carries its
cases forward without calling the parser. Whatever `type` says, a named parser
is how the feed is read, so a parser feed needs no `[feeds.html]` table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from zoningsync.cases.parser import FetchedDocument, load_parser, run_parser
from zoningsync.config import FeedConfig
from zoningsync.producers.cases.base import ReadingProducer
from zoningsync.producers.cases.documents import DocumentReader
from zoningsync.producers.cases.port import CaseDocument


class ParserCaseProducer(ReadingProducer):
    def __init__(self, feed: FeedConfig, reader: DocumentReader, spec: str) -> None:
        super().__init__(feed, reader)
        self.spec = spec

    async def documents(self, *, since: str | None) -> AsyncIterator[CaseDocument]:
        options = self.feed.cases
        assert options is not None
        read = await self.reader.read(self.feed.url)
        if read.remembered is not None:
            yield CaseDocument(url=read.url, etag=read.etag, last_modified=read.last_modified,
                               sha256=read.sha256, cases=read.remembered.cases,
                               unchanged=True)
        else:
            document = FetchedDocument.from_bytes(read.url, read.body or b"",
                                                  read.content_type)
            batch = await asyncio.get_running_loop().run_in_executor(
                None, run_parser, load_parser(self.spec), document, options)
            yield CaseDocument(url=read.url, etag=read.etag, last_modified=read.last_modified,
                               sha256=read.sha256, size=len(document.body),
                               content_type=read.content_type, cases=batch.cases,
                               rejected=batch.rejected)
        self.complete = True
