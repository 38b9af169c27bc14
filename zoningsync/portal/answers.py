"""Encoded answers of the portal, kept per published version so a page is built once.

A benchmark that reads the portal must measure the client, not the portal: built
from numpy columns on every request, a 2,000-parcel page costs the portal tens of
milliseconds of CPU, on the same cores as the tool under test. A real county's
server, or a static file server, costs next to nothing per page. So the portal
keeps the bytes of every answer it built, keyed by what decides them: the route
kind, the layer, and the request's parameters in a normal order (without the
token, which only gates the answer). A key also holds the generation, the county
version and every behaviour: a publish, a republish or any behaviour change starts
a new generation, and answers of an older one are never served.

`refresh()` (the publish route's `"warm": true`) rebuilds the previous generation's
answers against the new version before the publish answers, so a tool's full read
after a publish meets a warm cache, as after the first pass.

Answers are built and stored in the portal's worker thread (which also publishes,
so an answer is never built from a half-published county); `cached()` runs on the
event loop and only reads. Entries beyond `limit_bytes` are evicted oldest first.
The cache is off unless asked for: tests edit a county's columns in place, which
no generation sees.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, fields
from typing import Any

from zoningsync.portal.behaviours import Behaviours
from zoningsync.portal.county import County, Layer

UNKEYED_PARAMETERS = frozenset({"token"})

Key = tuple[str, int, tuple[tuple[str, str], ...]]
Generation = tuple[Any, ...]


@dataclass
class Entry:
    body: bytes
    rebuild: Callable[[], bytes]


class AnswerCache:
    """Answer bodies of the current generation, bounded in bytes."""

    def __init__(self, county: County, behaviours: Behaviours, limit_bytes: int) -> None:
        self.county = county
        self.behaviours = behaviours
        self.limit_bytes = limit_bytes
        self.hits = 0
        self.misses = 0
        self._generation: Generation | None = None
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0

    def generation(self) -> Generation:
        """What every answer depends on besides its parameters."""
        b = self.behaviours
        return (self.county.version, *(getattr(b, f.name) for f in fields(b)
                                       if not f.name.startswith("_")))

    @staticmethod
    def key(kind: str, layer: int, params: Mapping[str, str]) -> Key:
        return kind, layer, tuple(sorted((k, v) for k, v in params.items()
                                         if k not in UNKEYED_PARAMETERS))

    def cached(self, key: Key) -> bytes | None:
        """The stored body of `key` in the current generation, if any."""
        entry = self._entries.get(key) if self._generation == self.generation() else None
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry.body

    def answer(self, key: Key, build: Callable[[], bytes]) -> bytes:
        """The body of `key`, built and stored unless stored already (worker thread)."""
        self._start(self.generation())
        entry = self._entries.get(key)
        if entry is None:
            entry = Entry(build(), build)
            self._store(key, entry)
        return entry.body

    def refresh(self) -> int:
        """Rebuild every stored answer in the current generation (worker thread); the
        number rebuilt."""
        generation = self.generation()
        if generation == self._generation:
            return 0
        stale = list(self._entries.items())
        self._start(generation)
        for key, entry in stale:
            self._store(key, Entry(entry.rebuild(), entry.rebuild))
        return len(stale)

    def stats(self) -> dict[str, int]:
        return {"answers": len(self._entries), "bytes": self._bytes, "hits": self.hits,
                "misses": self.misses}

    def _start(self, generation: Generation) -> None:
        if generation != self._generation:
            self._entries = OrderedDict()
            self._bytes = 0
            self._generation = generation

    def _store(self, key: Key, entry: Entry) -> None:
        self._entries[key] = entry
        self._bytes += len(entry.body)
        while self._bytes > self.limit_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)


async def answer_in(worker: Executor, cache: AnswerCache | None, kind: str,
                    layer: Layer | None, params: dict[str, str],
                    build: Callable[[Layer | None, dict[str, str]], bytes]) -> bytes:
    """The body of one request: from the cache on the loop when stored, else built in
    the worker (and stored, with a cache)."""
    work = functools.partial(build, layer, params)
    if cache is not None:
        key = cache.key(kind, -1 if layer is None else layer.id, params)
        body = cache.cached(key)
        if body is not None:
            return body
        work = functools.partial(cache.answer, key, work)
    return await asyncio.get_running_loop().run_in_executor(worker, work)
