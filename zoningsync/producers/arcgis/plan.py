"""Fetch plans: which requests read a layer, named so a resumed run can skip some.

Offset plans page with `resultOffset`/`resultRecordCount` ordered by object id;
OID plans ask for explicit `objectIds` batches. A plan's fingerprint covers what
its page ids mean, so staged pages are only reused for the same plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

Strategy = Literal["offset", "oids"]


@dataclass(frozen=True)
class PageSpec:
    page_id: str
    offset: int | None = None
    limit: int | None = None
    oids: tuple[int, ...] = ()


@dataclass(frozen=True)
class FetchPlan:
    strategy: Strategy
    where: str
    page_size: int
    pages: tuple[PageSpec, ...]
    expected: int
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "where": self.where, "page_size": self.page_size,
            "expected": self.expected, "fingerprint": self.fingerprint,
            "pages": [[p.page_id, p.offset, p.limit, list(p.oids)] for p in self.pages],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FetchPlan:
        pages = tuple(PageSpec(page_id, offset, limit, tuple(oids))
                      for page_id, offset, limit, oids in data["pages"])
        return cls(data["strategy"], data["where"], int(data["page_size"]), pages,
                   int(data["expected"]), data["fingerprint"])


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def offset_plan(where: str, count: int, page_size: int) -> FetchPlan:
    pages = tuple(PageSpec(f"o{offset}", offset=offset, limit=page_size)
                  for offset in range(0, count, page_size))
    return FetchPlan("offset", where, page_size, pages, count,
                     _fingerprint("offset", where, page_size, count))


def oid_plan(where: str, oids: list[int], page_size: int, prefix: str = "b") -> FetchPlan:
    ordered = sorted(oids)
    pages = tuple(PageSpec(f"{prefix}{index}", oids=tuple(ordered[start:start + page_size]))
                  for index, start in enumerate(range(0, len(ordered), page_size)))
    return FetchPlan("oids", where, page_size, pages, len(ordered),
                     _fingerprint("oids", where, page_size, ordered))
