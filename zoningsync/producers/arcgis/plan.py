"""Fetch plans: which requests read a layer, named so a resumed run can skip some.

Offset plans page with `resultOffset`/`resultRecordCount` ordered by object id;
OID plans ask for explicit `objectIds` batches. A plan is stored in the run's
cursor; its fingerprint covers what its page ids mean (strategy, where, page size
and, for OID plans, the object ids), so staged pages are reused only by the plan
that named them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any, Literal

import orjson

from zoningsync.errors import FetchError

Strategy = Literal["offset", "oids"]
STRATEGIES: tuple[Strategy, ...] = ("offset", "oids")


@dataclass(frozen=True)
class PageSpec:
    """One page: a row range of an offset plan, or an object id batch of an OID plan."""

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
    def from_json(cls, data: Mapping[str, Any]) -> FetchPlan:
        """Read a stored plan back; a damaged cursor is a fetch error, not a traceback."""
        try:
            strategy = next(s for s in STRATEGIES if s == data["strategy"])
            pages = tuple(
                PageSpec(str(page_id), None if offset is None else int(offset),
                         None if limit is None else int(limit), tuple(int(o) for o in oids))
                for page_id, offset, limit, oids in data["pages"])
            return cls(strategy, str(data["where"]), int(data["page_size"]), pages,
                       int(data["expected"]), str(data["fingerprint"]))
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            raise FetchError(f"the stored fetch plan is unreadable ({exc!r}); "
                             "start a fresh run") from None


def fingerprint(strategy: Strategy, where: str, page_size: int,
                oids: Sequence[int] = ()) -> str:
    return hashlib.sha256(orjson.dumps([strategy, where, page_size, list(oids)])).hexdigest()


def offset_plan(where: str, count: int, page_size: int) -> FetchPlan:
    """ceil(count / page_size) row ranges; the last one also takes rows added since counting."""
    pages = tuple(PageSpec(f"o{index * page_size}", offset=index * page_size, limit=page_size)
                  for index in range(ceil(count / page_size)))
    return FetchPlan("offset", where, page_size, pages, count,
                     fingerprint("offset", where, page_size))


def oid_plan(where: str, oids: Sequence[int], page_size: int, prefix: str = "b") -> FetchPlan:
    ordered = sorted(oids)
    pages = tuple(PageSpec(f"{prefix}{index}", oids=tuple(ordered[start:start + page_size]))
                  for index, start in enumerate(range(0, len(ordered), page_size)))
    return FetchPlan("oids", where, page_size, pages, len(ordered),
                     fingerprint("oids", where, page_size, ordered))
