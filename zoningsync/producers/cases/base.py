"""What every case producer holds: its feed, its document reader, and what it found.

The run reads `complete`, `incomplete_because` and `high_water_mark` after the
iteration (see `port.CaseProducer`); each producer starts them the same way, as
"not everything read yet" and "no mark", and sets them as it reads.
"""

from __future__ import annotations

from datetime import datetime

from zoningsync.config import FeedConfig
from zoningsync.producers.cases.documents import DocumentReader


class ReadingProducer:
    def __init__(self, feed: FeedConfig, reader: DocumentReader) -> None:
        self.feed = feed
        self.reader = reader
        self.complete = False
        self.incomplete_because: str | None = None
        self.high_water_mark: datetime | None = None
