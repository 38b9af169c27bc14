"""Row hashes, chunk hashes and chunks: the values the store compares."""

from __future__ import annotations

import hashlib
from typing import Any

import h3
import orjson
from hypothesis import given
from hypothesis import strategies as st

from zoningsync.chunks import chunk_hash, chunks_of, row_hash

# Upstream JSON is parsed by orjson: integers stay within the 64-bit ranges it writes.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.text(max_size=8), st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)
attr_maps = st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=6)
field_maps = st.dictionaries(st.sampled_from(["parcel_id", "zoning_code", "zoning_desc"]),
                             st.one_of(st.none(), st.text(max_size=8)))
hashes = st.binary(min_size=16, max_size=16)


def sql_chunk_hash(row_hashes: list[bytes]) -> bytes:
    """PostgreSQL's sha256(string_agg(row_hash, ''::bytea ORDER BY row_hash)), step by step."""
    ordered = sorted(row_hashes)  # bytea orders like bytes: bytewise, then by length
    aggregated = b""
    for value in ordered:
        aggregated += value
    return hashlib.sha256(aggregated).digest()


@given(field_maps, attr_maps, st.binary(max_size=40))
def test_row_hash_ignores_key_order(fields: dict[str, Any], attrs: dict[str, Any],
                                    wkb: bytes) -> None:
    reordered_attrs = dict(reversed(list(attrs.items())))
    reordered_fields = dict(reversed(list(fields.items())))
    assert row_hash(fields, attrs, wkb) == row_hash(reordered_fields, reordered_attrs, wkb)


@given(field_maps, attr_maps, st.binary(max_size=40))
def test_row_hash_is_blake2b_of_sorted_key_json_then_wkb(fields: dict[str, Any],
                                                          attrs: dict[str, Any],
                                                          wkb: bytes) -> None:
    """The definition stored hashes were made with: changing it would rewrite every row."""
    canonical = orjson.dumps({"fields": fields, "attrs": attrs},
                             option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    expected = hashlib.blake2b(canonical + wkb, digest_size=16).digest()
    assert row_hash(fields, attrs, wkb) == expected


@given(attr_maps, st.text(min_size=1, max_size=6), values)
def test_row_hash_changes_with_any_attribute(attrs: dict[str, Any], key: str,
                                             value: Any) -> None:
    changed = {**attrs, key: value}
    if changed != attrs or (key in attrs and type(attrs[key]) is not type(value)):
        assert row_hash({}, attrs, b"w") != row_hash({}, changed, b"w")


@given(field_maps, st.sampled_from(["parcel_id", "zoning_code"]), st.text(max_size=8))
def test_row_hash_changes_with_any_field(fields: dict[str, Any], name: str,
                                         value: str) -> None:
    changed = {**fields, name: value}
    if changed != fields:
        assert row_hash(changed, {}, b"w") != row_hash(fields, {}, b"w")


@given(st.binary(min_size=1, max_size=40), st.integers(0, 39), st.integers(1, 255))
def test_row_hash_changes_with_any_geometry_byte(wkb: bytes, at: int, flip: int) -> None:
    position = at % len(wkb)
    changed = wkb[:position] + bytes([wkb[position] ^ flip]) + wkb[position + 1:]
    assert row_hash({}, {}, wkb) != row_hash({}, {}, changed)


def test_row_hash_is_16_bytes() -> None:
    assert len(row_hash({"parcel_id": "1"}, {"a": 1}, b"wkb")) == 16


def test_an_attribute_cannot_pose_as_the_geometry() -> None:
    assert row_hash({}, {"a": "x"}, b"") != row_hash({}, {"a": ""}, b"x")


@given(st.lists(hashes, max_size=30), st.randoms())
def test_chunk_hash_ignores_member_order(members: list[bytes], rnd: Any) -> None:
    shuffled = members[:]
    rnd.shuffle(shuffled)
    assert chunk_hash(members) == chunk_hash(shuffled)


@given(st.lists(st.binary(min_size=16, max_size=32), max_size=30))
def test_chunk_hash_equals_the_sql_definition(members: list[bytes]) -> None:
    assert chunk_hash(members) == sql_chunk_hash(members)
    assert chunk_hash(iter(members)) == sql_chunk_hash(members)


def test_an_empty_chunk_hashes_like_empty_bytes() -> None:
    assert chunk_hash([]) == hashlib.sha256(b"").digest()


@given(st.lists(hashes, min_size=1, max_size=20, unique=True), st.data())
def test_chunk_hash_changes_when_a_member_leaves_or_changes(members: list[bytes],
                                                            data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(members) - 1))
    assert chunk_hash(members) != chunk_hash(members[:index] + members[index + 1:])
    replacement = data.draw(hashes.filter(lambda h: h not in members))
    changed = [*members[:index], replacement, *members[index + 1:]]
    assert chunk_hash(members) != chunk_hash(changed)


def test_a_chunk_is_the_h3_cell_holding_the_point() -> None:
    cell, elsewhere = chunks_of([-78.6382, -85.75], [35.7796, 43.29], 7)
    assert h3.is_valid_cell(cell)
    assert h3.get_resolution(cell) == 7
    assert h3.latlng_to_cell(35.7796, -78.6382, 7) == cell
    assert cell != elsewhere


@given(st.floats(-180, 180), st.floats(-90, 90), st.integers(0, 15))
def test_a_chunk_is_written_as_h3_writes_cells(lon: float, lat: float,
                                               resolution: int) -> None:
    """Stored chunks and checkpoints hold these strings: they must not drift from h3's."""
    assert chunks_of([lon], [lat], resolution) == [h3.latlng_to_cell(lat, lon, resolution)]
