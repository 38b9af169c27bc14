"""What every case producer yields, and what it may ask of the run.

A producer yields one `CaseDocument` per document it read (a list page, a
detail page, a PDF, a page of Legistar matters): its validators and hash for
the next conditional GET, the cases it gave, the rejected rows, or why the whole
document was quarantined. An unchanged document (304, or the same sha256) is
yielded with `unchanged` set and the cases it gave last time: carried forward,
never re-parsed. After the iteration, `complete` says whether the producer read
everything the source lists, the only case in which vanished cases may retire,
and `incomplete_because` says why it did not (the run's warning);
`high_water_mark` is where the next incremental read starts (Legistar's newest
modification seen), None for sources that are always read whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Protocol

from zoningsync.cases.build import CaseRejection
from zoningsync.cases.model import CaseRecord


@dataclass(frozen=True)
class Remembered:
    """What the store kept of a document since it was last read."""

    etag: str | None
    last_modified: str | None
    sha256: str | None
    cases: tuple[CaseRecord, ...]
    links: Mapping[str, Any]
    quarantine: tuple[str, str] | None


class DocumentMemory(Protocol):
    async def recall(self, url: str) -> Remembered | None: ...

    async def had_cases(self) -> bool:
        """Whether the feed stored cases before (a list that now gives none is suspect)."""
        ...


@dataclass(frozen=True)
class CaseDocument:
    url: str
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None
    cases: tuple[CaseRecord, ...] = ()
    rejected: tuple[CaseRejection, ...] = ()
    quarantine: tuple[str, str] | None = None  # (DocumentQuarantine code, detail)
    links: Mapping[str, Any] = field(default_factory=dict)
    unchanged: bool = False
    warnings: tuple[str, ...] = ()
    # Cases this document contributes to the run; False for documents whose cases
    # reach the run through another (a detail page merges into its list row).
    stage: bool = True
    # Whether the store keeps it as a document (a page of an API answer is not one).
    remember: bool = True


class CaseProducer(Protocol):
    complete: bool
    incomplete_because: str | None
    high_water_mark: datetime | None

    def documents(self, *, since: str | None) -> AsyncIterator[CaseDocument]: ...


def combine(first: CaseRecord, later: CaseRecord) -> CaseRecord:
    """One case read from two documents: the first reading wins, the later fills blanks.

    A list row names the status and the parties; the agenda PDF it links adds
    the pages, the document and the description. Attributes merge the same way.
    """
    filled = {name: getattr(later, name) for name in FILLABLE
              if getattr(first, name) in (None, ()) and getattr(later, name) not in (None, ())}
    if "status" in filled:
        filled["status_class"] = later.status_class
    attrs = {**later.attrs, **first.attrs}
    return replace(first, **filled, attrs=attrs)


FILLABLE = tuple(f.name for f in fields(CaseRecord)
                 if f.name not in ("case_number", "attrs", "status_class"))
