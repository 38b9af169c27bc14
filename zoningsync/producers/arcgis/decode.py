"""Pages of features decoded with each geometry left as its JSON text.

orjson made Python objects of every point of a page, a list and two floats
each: 11 of the 15.8 ms it took on a 2,000-parcel page, and 5.4 of the 6.8 ms
that freeing the page took. msgspec decodes the same answer in 7.4 ms with each
geometry kept as its text (`RawJson`), which the geometry stage reads a page
at a time into arrays (`geometry.packed_esri_rings`).

An answer of any other shape (an error, a feature with members besides its
attributes and geometry, a value msgspec refuses) is decoded by orjson as
before, so the answer checks and the quarantine see it as it came.

Both decoders stop at a nesting depth (msgspec raises RecursionError near
Python's recursion limit, orjson refuses more than 1,024 levels), so one
geometry nested thousands of arrays deep would spoil its whole page. Such an
answer is split feature by feature by a flat scan of its brackets (no
recursion), each geometry kept as its text: the geometry stage quarantines the
one it cannot read, and the page goes on. An answer that is too deep anywhere
else is not JSON zoningsync can use: decoding it raises ValueError.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import msgspec
import orjson

from zoningsync.records import RawJson


class _Feature(msgspec.Struct, forbid_unknown_fields=True):
    attributes: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    geometry: msgspec.Raw = msgspec.Raw()


class _FeaturesAnswer(msgspec.Struct):
    features: list[_Feature]
    spatialReference: dict[str, Any] | None = None
    error: Any = None


_DECODER = msgspec.json.Decoder(_FeaturesAnswer)
_FEATURE_DECODER = msgspec.json.Decoder(_Feature)
# Strings (whose brackets are not structure) and the structural characters.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]')
_OPEN, _CLOSE, _QUOTE, _COLON, _COMMA = frozenset(b"[{"), frozenset(b"]}"), 34, 58, 44
_BLANKS = b" \t\r\n"

Body = bytes | bytearray


def decode_features(body: Body) -> Any:
    """A features answer as orjson would decode it, but geometries as `RawJson`.

    Holds `features` and, if the answer has one, `spatialReference`: all that a
    page read uses. Raises ValueError (orjson.JSONDecodeError) for text that is
    not JSON or nests too deep outside its geometries.
    """
    try:
        answer = _DECODER.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        return _decode_whole(body)
    if answer.error is not None:
        return _decode_whole(body)
    decoded: dict[str, Any] = {"features": [_feature(f) for f in answer.features]}
    if answer.spatialReference is not None:
        decoded["spatialReference"] = answer.spatialReference
    return decoded


def _feature(feature: _Feature) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    if feature.attributes is not msgspec.UNSET:
        decoded["attributes"] = feature.attributes
    text = bytes(feature.geometry)
    if text:
        decoded["geometry"] = None if text == b"null" else RawJson(text)
    return decoded


def _decode_whole(body: Body) -> Any:
    """orjson's reading of the answer; a too-deep one read feature by feature."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as whole:
        try:
            return _feature_by_feature(body)
        except ValueError:
            raise whole from None


def _feature_by_feature(body: Body) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for key, value in _members(body, _start(body, 0)):
        if key == "features":
            if body[value.start] != ord("["):
                raise ValueError("the answer's 'features' is not a list")
            answer[key] = [_lenient_feature(body, span) for span in _elements(body, value)]
        else:
            answer[key] = orjson.loads(body[value])
    return answer


def _lenient_feature(body: Body, span: slice) -> Any:
    text = body[span]
    try:
        return _feature(_FEATURE_DECODER.decode(text))
    except (msgspec.MsgspecError, RecursionError):
        pass
    if body[span.start] != ord("{"):
        return orjson.loads(text)
    feature: dict[str, Any] = {}
    for key, value in _members(body, span.start):
        part = body[value]
        if key == "geometry" and part != b"null":
            feature[key] = RawJson(part)
        else:
            feature[key] = orjson.loads(part)
    return feature


def _start(body: Body, position: int) -> int:
    """The first position at or after `position` that is not blank."""
    while position < len(body) and body[position] in _BLANKS:
        position += 1
    if position == len(body):
        raise ValueError("no JSON value where one was expected")
    return position


def _separators(body: Body, start: int) -> tuple[list[int], int]:
    """Positions of the `,` and `:` directly inside the container opening at
    `start`, and the position of its closing bracket: one flat pass, any depth.
    """
    depth = 0
    marks: list[int] = []
    for match in _TOKENS.finditer(body, start):
        char = body[match.start()]
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                return marks, match.start()
        elif depth == 1 and char != _QUOTE:
            marks.append(match.start())
    raise ValueError("a JSON container is never closed")


def _parts(body: Body, start: int) -> tuple[list[slice], list[int]]:
    """The stripped spans between a container's own separators, and the separators."""
    marks, end = _separators(body, start)
    bounds = [start, *marks, end]
    spans = []
    for left, right in itertools.pairwise(bounds):
        first, last = left + 1, right
        while first < last and body[first] in _BLANKS:
            first += 1
        while last > first and body[last - 1] in _BLANKS:
            last -= 1
        spans.append(slice(first, last))
    if len(spans) == 1 and spans[0].start == spans[0].stop:
        return [], []  # an empty container
    return spans, [body[mark] for mark in marks]


def _elements(body: Body, value: slice) -> list[slice]:
    spans, separators = _parts(body, value.start)
    if any(mark != _COMMA for mark in separators):
        raise ValueError("a JSON array holds a ':'")
    return spans


def _members(body: Body, start: int) -> list[tuple[str, slice]]:
    """An object's members as (key, value span), its values left unread."""
    if body[start] != ord("{"):
        raise ValueError("expected a JSON object")
    spans, separators = _parts(body, start)
    if separators != [_COLON if i % 2 == 0 else _COMMA for i in range(len(separators))] or (
            len(spans) % 2):
        raise ValueError("a JSON object is malformed")
    members = []
    for key, value in zip(spans[::2], spans[1::2], strict=True):
        name = orjson.loads(body[key])
        if not isinstance(name, str):
            raise ValueError("a JSON object key is not a string")
        members.append((name, value))
    return members
