"""The case store: a case run's cases staged, planned and merged, and its documents.

Cases follow the discipline of features at a smaller scale: a run stages what
it read (`staged_cases`, UNLOGGED, so a killed run resumes), the run checks the
plan against its mass-retire guard before anything is written, and the merge
compares row hashes in one transaction, so an unchanged source writes nothing
and every change leaves the version it replaced in `case_history`. Documents
remember the cases read from their content and whether it was quarantined, so
an unchanged document is neither parsed nor quarantined twice.

`CaseRecord` becomes a row, and a row or a stored `content()` a `CaseRecord`,
only here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zoningsync.cases.build import CaseRejection
from zoningsync.cases.model import CaseRecord, DocumentQuarantine, StatusClass
from zoningsync.redact import redact
from zoningsync.sql import queries
from zoningsync.store.connect import Conn

SQL = queries("cases.sql")

CASE_COLUMNS = (
    "case_number", "title", "case_type", "status", "status_class", "filed_at", "hearing_at",
    "decided_at", "from_zoning", "to_zoning", "acreage", "address", "applicant", "parcel_ids",
    "detail_url", "document_url", "document_sha256", "pages", "attrs",
)
STAGED_CASE_COLUMNS = ("run_id", *CASE_COLUMNS, "row_hash")
_DATES = ("filed_at", "hearing_at", "decided_at")


@dataclass(frozen=True, slots=True)
class CaseMergePlan:
    """What merging the run's staged cases would write, counted before writing anything."""

    inserting: int
    updating: int
    retiring: int
    unchanged: int
    current: int  # the feed's cases stored now

    @property
    def retire_fraction(self) -> float:
        return self.retiring / self.current if self.current else 0.0

    def retires_too_many(self, max_retire_fraction: float) -> bool:
        """The mass-retire guard: a read that lost most cases is a broken read, not news."""
        return self.retire_fraction > max_retire_fraction


@dataclass(frozen=True, slots=True)
class CaseMergeCounts:
    inserted: int
    updated: int
    retired: int
    unchanged: int
    field_changes: int  # rows written to case_status_history


@dataclass(frozen=True, slots=True)
class DocumentQuarantineState:
    reason: DocumentQuarantine
    detail: str
    quarantine_id: int | None  # null once the quarantine row is gone


@dataclass(frozen=True, slots=True)
class DocumentState:
    """What zoningsync knows of one document of a feed since it last read it."""

    etag: str | None
    last_modified: str | None
    sha256: str | None
    size: int | None
    content_type: str | None
    fetched_at: datetime
    changed_at: datetime | None
    cases: tuple[CaseRecord, ...]
    quarantine: DocumentQuarantineState | None
    last_run: int | None
    links: Mapping[str, Any] = field(default_factory=dict)

    def holds(self, sha256: str) -> bool:
        """This content was read before: its cases (or its quarantine) carry forward."""
        return self.sha256 == sha256


def case_row(case: CaseRecord) -> tuple[Any, ...]:
    """The values of `CASE_COLUMNS` for one case, as asyncpg sends them."""
    return (
        case.case_number, case.title, case.case_type, case.status, case.status_class.value,
        case.filed_at, case.hearing_at, case.decided_at, case.from_zoning, case.to_zoning,
        case.acreage, case.address, case.applicant, list(case.parcel_ids), case.detail_url,
        case.document_url, case.document_sha256, list(case.pages), dict(case.attrs),
    )


def case_from_row(row: Mapping[str, Any]) -> CaseRecord:
    """The case a row of `cases`, `staged_cases` or `rezoning_cases` holds."""
    return CaseRecord(
        case_number=row["case_number"], title=row["title"], case_type=row["case_type"],
        status=row["status"], status_class=StatusClass(row["status_class"]),
        filed_at=row["filed_at"], hearing_at=row["hearing_at"], decided_at=row["decided_at"],
        from_zoning=row["from_zoning"], to_zoning=row["to_zoning"], acreage=row["acreage"],
        address=row["address"], applicant=row["applicant"],
        parcel_ids=tuple(row["parcel_ids"] or ()), detail_url=row["detail_url"],
        document_url=row["document_url"], document_sha256=row["document_sha256"],
        pages=tuple(row["pages"] or ()), attrs=dict(row["attrs"] or {}),
    )


def case_from_content(content: Mapping[str, Any]) -> CaseRecord:
    """The case whose `CaseRecord.content()` a document row kept (dates as ISO text)."""
    values = dict(content)
    for name in _DATES:
        text = values.get(name)
        values[name] = datetime.fromisoformat(text) if text is not None else None
    values["status_class"] = StatusClass(values["status_class"])
    values["parcel_ids"] = tuple(values["parcel_ids"])
    values["pages"] = tuple(values["pages"])
    return case_from_row(values)


def _staged_records(run_id: int, cases: Sequence[CaseRecord]) -> list[tuple[Any, ...]]:
    """Rows to COPY, the later of two readings of a case number winning."""
    latest = {case.case_number: case for case in cases}
    return [(run_id, *case_row(case), case.row_hash()) for case in latest.values()]


async def stage_cases(conn: Conn, run_id: int, cases: Sequence[CaseRecord]) -> None:
    """Stage a batch of the run's cases by COPY; a case staged before is replaced.

    The rows and their hashes are built on the thread pool: a portal's whole
    case list hashes in one call, which is CPU the event loop must not wait on.
    """
    if not cases:
        return
    records = await asyncio.get_running_loop().run_in_executor(
        None, _staged_records, run_id, cases)
    async with conn.transaction():
        await conn.execute(SQL["create_case_scratch"])
        await conn.copy_records_to_table(
            "case_scratch", columns=STAGED_CASE_COLUMNS, records=records)
        await conn.execute(SQL["stage_case_scratch"])


async def clear_case_staging(conn: Conn, run_id: int, feed_id: str) -> None:
    """Drop the run's staged cases, and any a closed run of the feed left behind."""
    await conn.execute(SQL["clear_case_staging"], run_id, feed_id)


async def plan_case_merge(conn: Conn, run_id: int, feed_id: str, *,
                          complete: bool) -> CaseMergePlan:
    """Count what `merge_cases` would do; only a complete read retires anything."""
    row = await conn.fetchrow(SQL["plan_case_merge"], run_id, feed_id, complete)
    assert row is not None
    return CaseMergePlan(inserting=row["inserting"], updating=row["updating"],
                         retiring=row["retiring"], unchanged=row["unchanged"],
                         current=row["current"])


async def merge_cases(conn: Conn, run_id: int, feed_id: str, jurisdiction: str, *,
                      complete: bool) -> CaseMergeCounts:
    """Merge the run's staged cases in one transaction, and add the counts to its run.

    New cases are inserted and changed ones (by row hash) updated, each with its
    history row; a moved status, hearing date or zoning also goes to
    case_status_history. With `complete` (the read saw every case upstream has),
    the feed's cases the run did not stage are retired. Merging again writes
    nothing, so a resumed run may repeat it.
    """
    async with conn.transaction():
        upsert = await conn.fetchrow(SQL["merge_cases_upsert"], run_id, feed_id, jurisdiction)
        assert upsert is not None
        retired = 0
        if complete:
            absent = [r["case_number"] for r in
                      await conn.fetch(SQL["absent_cases"], run_id, feed_id)]
            retired = await retire_cases(conn, run_id, feed_id, absent)
        staged = int(await conn.fetchval(SQL["count_staged_cases"], run_id))
        counts = CaseMergeCounts(
            inserted=upsert["inserted"], updated=upsert["updated"], retired=retired,
            unchanged=staged - upsert["inserted"] - upsert["updated"],
            field_changes=upsert["moved"],
        )
        await conn.execute(SQL["add_case_merge_stats"], run_id, counts.inserted,
                           counts.updated, counts.retired)
    return counts


async def retire_cases(conn: Conn, run_id: int, feed_id: str,
                       case_numbers: list[str]) -> int:
    """Remove these cases of the feed, their last versions kept in history as run_id's."""
    if not case_numbers:
        return 0
    return int(await conn.fetchval(SQL["retire_cases"], run_id, feed_id, case_numbers))


async def document_state(conn: Conn, feed_id: str, url: str) -> DocumentState | None:
    row = await conn.fetchrow(SQL["document_state"], feed_id, url)
    return None if row is None else _document_state(row)


def _document_state(row: Mapping[str, Any]) -> DocumentState:
    quarantine = None
    if row["quarantine_reason"] is not None:
        quarantine = DocumentQuarantineState(
            DocumentQuarantine(row["quarantine_reason"]), row["quarantine_detail"] or "",
            row["quarantine_id"])
    return DocumentState(
        etag=row["etag"], last_modified=row["last_modified"], sha256=row["sha256"],
        size=row["size"], content_type=row["content_type"], fetched_at=row["fetched_at"],
        changed_at=row["changed_at"],
        cases=tuple(case_from_content(c) for c in row["extracted_cases"] or ()),
        quarantine=quarantine, last_run=row["last_run"], links=row["links"] or {},
    )


async def save_document(
    conn: Conn,
    feed_id: str,
    url: str,
    *,
    run_id: int,
    etag: str | None,
    last_modified: str | None,
    sha256: str | None,
    size: int | None,
    content_type: str | None,
    cases: Sequence[CaseRecord],
    quarantine: tuple[str, str] | None,
    links: Mapping[str, Any] | None = None,
) -> None:
    """Remember what a fetch of `url` gave: its validators, content hash and cases.

    `quarantine` is (a `DocumentQuarantine` code, detail) when the content gave
    no cases: it becomes a quarantine row of this run (source_key = the URL),
    unless this content was already quarantined for that reason, whose row the
    document keeps pointing to. A new quarantine row counts in the run's
    `quarantined`, so a document is counted once, by the run that quarantined it.
    A save that changes nothing writes nothing.
    """
    extracted = [case.content() for case in cases]
    links = links or {}
    async with conn.transaction():
        await conn.execute(SQL["lock_document"], feed_id, url)
        row = await conn.fetchrow(SQL["document_state"], feed_id, url)
        before = None if row is None else _document_state(row)
        reason = detail = None
        quarantine_id = None
        if quarantine is not None:
            reason = DocumentQuarantine(quarantine[0]).value
            detail = redact(quarantine[1])
            same = before is not None and sha256 is not None and before.holds(sha256)
            kept = before.quarantine if same and before is not None else None
            if kept is not None and kept.reason == reason and kept.quarantine_id is not None:
                detail, quarantine_id = kept.detail, kept.quarantine_id
            else:
                quarantine_id = await conn.fetchval(
                    SQL["quarantine_document"], feed_id, run_id, url, reason, detail,
                    {"sha256": sha256, "size": size, "content_type": content_type})
                await conn.execute(SQL["add_quarantined"], run_id, 1)
        await conn.execute(
            SQL["save_document"], feed_id, url, etag, last_modified, sha256, size,
            content_type, extracted, quarantine_id, reason, detail, run_id, dict(links))


async def count_cases(conn: Conn, feed_id: str) -> int:
    """The feed's current cases (the layout guard asks whether it had any)."""
    return int(await conn.fetchval(SQL["count_cases"], feed_id))


async def count_staged_cases(conn: Conn, run_id: int) -> int:
    return int(await conn.fetchval(SQL["count_staged_cases"], run_id))


async def set_cases_fetched(conn: Conn, run_id: int, cases: int) -> None:
    """Record the cases the run read, so its summary reads fetched = stored + unchanged."""
    await conn.execute(SQL["set_cases_fetched"], run_id, cases)


async def quarantine_rejected(conn: Conn, feed_id: str, run_id: int, url: str,
                              rejected: Sequence[CaseRejection]) -> None:
    """Quarantine rows that could not become cases, each with its reason and raw values."""
    async with conn.transaction():
        await conn.execute(SQL["quarantine_case_rows"], feed_id, run_id, url,
                           [r.reason for r in rejected], [redact(r.detail) for r in rejected],
                           [dict(r.raw) for r in rejected])
        await conn.execute(SQL["add_quarantined"], run_id, len(rejected))
