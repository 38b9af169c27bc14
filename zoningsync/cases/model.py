"""A rezoning case as every case producer yields it and the case store keeps it.

Producers (HTML pages, agenda PDFs, Legistar matters, custom parsers) build
`CaseRecord`s knowing nothing of the database; the store merges them knowing
nothing of where they came from. The content hash covers every field, so an
unchanged case is recognised without comparing columns one by one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson


class StatusClass(StrEnum):
    """Where a case stands, whatever words the jurisdiction publishes."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    UNKNOWN = "unknown"


class DocumentQuarantine(StrEnum):
    """Why a fetched document gave no cases; the value is `quarantine.reason`."""

    NO_TEXT_LAYER = "no_text_layer"
    ENCRYPTED = "encrypted"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    NOT_PDF = "not_pdf"
    NO_MATCH = "no_match"


# The canonical fields of a case; anything else a source yields goes to `attrs`.
CASE_FIELDS = (
    "case_number", "title", "case_type", "status", "filed_at", "hearing_at", "decided_at",
    "from_zoning", "to_zoning", "acreage", "address", "applicant", "parcel_ids",
    "detail_url", "document_url", "document_sha256", "pages",
)


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """One case, normalized: `case_number` trimmed with blanks collapsed.

    Dates are timezone-aware (UTC); `pages` are 1-based page numbers of the
    document the case was read from; `attrs` holds JSON-ready values only.
    """

    case_number: str
    title: str | None = None
    case_type: str | None = None
    status: str | None = None
    status_class: StatusClass = StatusClass.UNKNOWN
    filed_at: datetime | None = None
    hearing_at: datetime | None = None
    decided_at: datetime | None = None
    from_zoning: str | None = None
    to_zoning: str | None = None
    acreage: float | None = None
    address: str | None = None
    applicant: str | None = None
    parcel_ids: tuple[str, ...] = ()
    detail_url: str | None = None
    document_url: str | None = None
    document_sha256: str | None = None
    pages: tuple[int, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """Every field as JSON-ready values, in a fixed form (the hash's input)."""
        return {
            "case_number": self.case_number,
            "title": self.title,
            "case_type": self.case_type,
            "status": self.status,
            "status_class": self.status_class.value,
            "filed_at": _iso(self.filed_at),
            "hearing_at": _iso(self.hearing_at),
            "decided_at": _iso(self.decided_at),
            "from_zoning": self.from_zoning,
            "to_zoning": self.to_zoning,
            "acreage": self.acreage,
            "address": self.address,
            "applicant": self.applicant,
            "parcel_ids": list(self.parcel_ids),
            "detail_url": self.detail_url,
            "document_url": self.document_url,
            "document_sha256": self.document_sha256,
            "pages": list(self.pages),
            "attrs": dict(self.attrs),
        }

    def row_hash(self) -> bytes:
        """sha256 of the canonical content: equal hashes mean an unchanged case."""
        return hashlib.sha256(orjson.dumps(self.content(), option=orjson.OPT_SORT_KEYS)).digest()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
