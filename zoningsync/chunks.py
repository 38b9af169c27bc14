"""Chunks and content hashes: what the store compares instead of rows.

A chunk is the H3 cell of a feature's point on surface, so a feature stays in its
chunk as long as it stays put, whatever its OID or position in the layer. A row
hash covers a feature's content only (canonical fields, attributes, normalized
WKB), never the upstream OID, which changes when a county republishes its layer.
A chunk hash is defined so PostgreSQL can compute the same value from stored rows:
`sha256(string_agg(row_hash, ''::bytea ORDER BY row_hash))`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from h3.api import basic_int

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
ROW_HASH_BYTES = 16


def row_hash(fields: Mapping[str, str | None], attrs: Mapping[str, Any], wkb: bytes) -> bytes:
    """A 16-byte digest of the content: fields and attrs in sorted-key JSON, then the WKB.

    Raises orjson.JSONEncodeError when an attribute is not JSON-ready.
    """
    return row_hash_of_json(fields, canonical_json(attrs), wkb)


def canonical_json(value: Any) -> bytes:
    """Sorted-key compact JSON: the attrs of a row hash, and the attrs the store sends."""
    return orjson.dumps(value, option=_CANONICAL)


def row_hash_of_json(fields: Mapping[str, str | None], attrs_json: bytes, wkb: bytes
                     ) -> bytes:
    """`row_hash` given the attrs' `canonical_json`, encoded once for hash and store.

    The bytes hashed are those of `canonical_json({"fields": ..., "attrs": ...})`:
    sorted keys put "attrs" first.
    """
    return hashlib.blake2b(
        b"".join((b'{"attrs":', attrs_json, b',"fields":', canonical_json(fields), b"}", wkb)),
        digest_size=ROW_HASH_BYTES).digest()


def chunk_hash(row_hashes: Iterable[bytes]) -> bytes:
    """The sha256 of the chunk's row hashes concatenated in byte order, as SQL computes it."""
    return hashlib.sha256(b"".join(sorted(row_hashes))).digest()


def chunks_of(lons: Iterable[float], lats: Iterable[float], resolution: int) -> list[str]:
    """The H3 cell (hex string, as h3's string API writes it) holding each point.

    h3's integer API and one hex format per cell take half the time of its string
    API, which converts through Python on every call.
    """
    cell = basic_int.latlng_to_cell
    return [format(cell(lat, lon, resolution), "x")
            for lon, lat in zip(lons, lats, strict=True)]
