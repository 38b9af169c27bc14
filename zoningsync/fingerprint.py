"""The fingerprint of the feed settings that shape its rows.

Rows staged or stored under one field map must never mix with rows of another:
a first load killed at 30% and resumed after `zoning_code` was mapped to another
field would otherwise "succeed" with both mappings, and every later incremental
run keep the mix. A run stores this fingerprint; a resume or an incremental read
is allowed only when it is unchanged. Settings that only change how pages are
asked for (page size, rate limit, timeouts, retries) are left out: the rows they
give are the same.
"""

from __future__ import annotations

import hashlib

import orjson

from zoningsync.config import FeedConfig


def plan_fingerprint(feed: FeedConfig) -> str:
    """sha256 (hex) of the canonical JSON of every setting that shapes a stored row.

    A new feed setting that changes what a record becomes (a CRS override, a
    parsing option) belongs here too.
    """
    shaping: dict[str, object] = {
        "url": feed.url,
        "kind": feed.kind.value,
        "key": list(feed.key),
        "fields": dict(feed.fields),
        "where": feed.where,
        "h3_resolution": feed.h3_resolution,
    }
    if feed.case_settings:
        shaping["cases"] = dict(feed.case_settings)
    return hashlib.sha256(orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS)).hexdigest()
