"""Helpers of the case-feed end-to-end tests: source files, runs, stored cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from tests.test_sync import settings_for
from zoningsync.config import FeedConfig, load_source_file
from zoningsync.portal.server import RunningPortal
from zoningsync.services.sync import sync_feeds

EXAMPLE = Path(__file__).parent.parent / "sources" / "examples" / "demo-cases.toml.example"
PORT_IN_EXAMPLE = "http://127.0.0.1:8765"


def example_feed(tmp_path: Path, portal: RunningPortal, feed_id: str) -> FeedConfig:
    """The example source's feed `feed_id`, pointed at this portal."""
    text = EXAMPLE.read_text().replace(PORT_IN_EXAMPLE, portal.base_url)
    return source_feed(tmp_path, "demo-county-cases.toml", text, feed_id)


def source_feed(tmp_path: Path, name: str, text: str, feed_id: str) -> FeedConfig:
    """Feed `feed_id` of a source file written with `text` (checked as any source is)."""
    source = tmp_path / name
    source.write_text(text)
    [feed] = [f for f in load_source_file(source).feeds if f.id == feed_id]
    return feed


async def sync(db_url: str, tmp_path: Path, *feeds: FeedConfig, **options: Any
               ) -> list[dict[str, Any]]:
    return await sync_feeds(settings_for(db_url, tmp_path), list(feeds), full=False,
                            interactive=False, **options)


async def sync_one(db_url: str, tmp_path: Path, feed: FeedConfig, **options: Any
                   ) -> dict[str, Any]:
    [summary] = await sync(db_url, tmp_path, feed, **options)
    return summary


async def stored_cases(db: asyncpg.Connection, feed: str) -> dict[str, asyncpg.Record]:
    rows = await db.fetch("SELECT * FROM zoningsync.rezoning_cases WHERE feed = $1", feed)
    return {r["case_number"]: r for r in rows}
