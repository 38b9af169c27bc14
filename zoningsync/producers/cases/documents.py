"""Reading one document politely: robots.txt, conditional GET, content hash, size cap.

Every case producer reads through here, so each document is asked for with the
validators the store kept (If-None-Match / If-Modified-Since), and an answer
whose sha256 equals the last one counts as unchanged too (many portals send no
validators). robots.txt is read once per host through the same fetcher, and
respected unless the feed says `respect_robots = false`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import structlog

from zoningsync.config import FeedConfig
from zoningsync.errors import FetchError, UpstreamRefused
from zoningsync.http import Fetcher, FetchStats, HostLimits, RetryPolicy
from zoningsync.producers.cases.port import DocumentMemory, Remembered

log = structlog.get_logger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024
PAGE_MAX_BYTES = 16 * 1024 * 1024


class RobotsRefused(FetchError):
    """robots.txt asks crawlers to stay away from this URL."""


@dataclass(frozen=True)
class Read:
    """A document as fetched: its body, or the memory of it when unchanged."""

    url: str
    body: bytes | None
    etag: str | None
    last_modified: str | None
    sha256: str | None
    content_type: str | None
    remembered: Remembered | None

    @property
    def unchanged(self) -> bool:
        return self.body is None


class DocumentReader:
    def __init__(self, feed: FeedConfig, fetcher: Fetcher, stats: FetchStats,
                 memory: DocumentMemory) -> None:
        self.feed = feed
        self.fetcher = fetcher
        self.stats = stats
        self.memory = memory
        self.retry = RetryPolicy(max_retries=feed.max_retries, timeout_s=feed.timeout_s)
        self._robots: dict[str, RobotFileParser | None] = {}
        fetcher.set_host_limits(urlsplit(feed.url).netloc, HostLimits(
            feed.rate_limit.requests_per_second, feed.rate_limit.burst))

    async def read(self, url: str, *, max_bytes: int = PAGE_MAX_BYTES,
                   refresh: bool = False) -> Read:
        """The document at `url`, or its memory when the server says it is unchanged.

        With `refresh`, the body whatever the memory holds (to read it again).
        """
        await self._check_robots(url)
        known = None if refresh else await self.memory.recall(url)
        answer = await self.fetcher.get_document(
            url, etag=known.etag if known else None,
            last_modified=known.last_modified if known else None,
            retry=self.retry, stats=self.stats, max_bytes=max_bytes)
        if answer.not_modified and known is not None:
            return Read(url, None, known.etag, known.last_modified, known.sha256,
                        None, known)
        sha256 = hashlib.sha256(answer.body).hexdigest()
        if known is not None and known.sha256 == sha256:
            return Read(url, None, answer.etag, answer.last_modified, sha256,
                        answer.content_type, known)
        return Read(url, answer.body, answer.etag, answer.last_modified, sha256,
                    answer.content_type, None)

    async def _check_robots(self, url: str) -> None:
        if not self.feed.cases or not self.feed.cases.respect_robots:
            return
        parts = urlsplit(url)
        root = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        if root not in self._robots:
            self._robots[root] = await self._load_robots(root)
        robots = self._robots[root]
        if robots is not None and not robots.can_fetch(self.fetcher.user_agent, url):
            raise RobotsRefused(
                f"{root}/robots.txt disallows {parts.path or '/'} for zoningsync; set "
                f"respect_robots = false on feed {self.feed.full_id} if the county allows it")

    async def _load_robots(self, root: str) -> RobotFileParser | None:
        """The host's rules; none (everything allowed) when it has no robots.txt."""
        try:
            body = await self.fetcher.get_bytes(f"{root}/robots.txt", retry=self.retry,
                                                stats=self.stats, max_bytes=ROBOTS_MAX_BYTES)
        except UpstreamRefused:
            return None
        parser = RobotFileParser()
        parser.parse(body.decode("utf-8", "replace").splitlines())
        return parser
