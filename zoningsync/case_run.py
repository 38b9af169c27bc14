"""A run of a case feed: documents in, cases staged, merged with history.

The lifecycle (lease, run row, resume, failure, hold) is `feed_run.FeedRun`'s;
these are the case steps. The producer reads every document of the source
(conditional GETs: an unchanged document carries its cases forward unparsed),
each document is remembered in `documents` as it is read, and the cases of the
run are combined by number (a list row first, the PDF it links filling blanks)
and staged once the read ends. The merge is planned first so that the
retirement guard can hold a read that lost too many cases, writing nothing;
only a complete read retires anything.

A case feed is small (hundreds to thousands of cases), so a resumed run simply
reads again: its documents answer 304 and carry their cases forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from zoningsync.cases.model import CaseRecord
from zoningsync.feed_run import FeedRun
from zoningsync.producers.cases import case_producer
from zoningsync.producers.cases.port import CaseDocument, Remembered, combine
from zoningsync.retire_guard import retire_guard
from zoningsync.store import cases as case_store
from zoningsync.store import feeds, runs
from zoningsync.store.connect import Conn

log = structlog.get_logger(__name__)


@dataclass
class CaseCursor:
    """A case run's plan: a full read, or a Legistar read of matters modified since."""

    mode: str
    since: str | None = None
    notes: list[str] = field(default_factory=list)
    complete: bool = False
    mass_retire_allowed: bool = False
    high_water_mark: str | None = None  # where the next incremental read starts

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "since": self.since, "notes": self.notes,
                "complete": self.complete, "mass_retire_allowed": self.mass_retire_allowed,
                "high_water_mark": self.high_water_mark}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseCursor:
        return cls(mode=data["mode"], since=data.get("since"), notes=list(data.get("notes", [])),
                   complete=bool(data.get("complete", False)),
                   mass_retire_allowed=bool(data.get("mass_retire_allowed", False)),
                   high_water_mark=data.get("high_water_mark"))


class StoredDocuments:
    """The producer's memory of documents, read from the store on the run's session."""

    def __init__(self, conn: Conn, feed_id: str) -> None:
        self.conn = conn
        self.feed_id = feed_id

    async def recall(self, url: str) -> Remembered | None:
        state = await case_store.document_state(self.conn, self.feed_id, url)
        if state is None:
            return None
        quarantine = ((state.quarantine.reason.value, state.quarantine.detail)
                      if state.quarantine is not None else None)
        return Remembered(etag=state.etag, last_modified=state.last_modified,
                          sha256=state.sha256, cases=state.cases, links=state.links,
                          quarantine=quarantine)

    async def had_cases(self) -> bool:
        return bool(await case_store.count_cases(self.conn, self.feed_id))


class CaseRun(FeedRun[CaseCursor]):
    """A run of a `kind = "cases"` feed (html, pdf, legistar or a custom parser)."""

    def _cursor_from_json(self, data: dict[str, Any]) -> CaseCursor:
        return CaseCursor.from_json(data)

    async def _plan(self, conn: Conn, run_id: int, *, force_full: bool) -> CaseCursor:
        last = await runs.last_success(conn, self.feed.full_id)
        # Matters modified after the newest one the last success saw, on the server's
        # clock; a success that saw no modification date starts from its own start.
        mark = (last.high_water_mark or last.started_at) if last is not None else None
        incremental = (self.feed.type == "legistar" and not force_full
                       and not self.settings_changed and last is not None
                       and last.fingerprint == self.fingerprint and mark is not None)
        cursor = CaseCursor(mode="incremental" if incremental else "full",
                            since=mark.isoformat() if incremental and mark else None)
        await runs.save_plan(conn, run_id, mode=cursor.mode, cursor=cursor.to_json(),
                             expected=None, layer_count=None)
        self.phase = "fetch"
        log.info("run planned", feed=self.feed.full_id, run=run_id, mode=cursor.mode)
        return cursor

    async def _fetch(self, conn: Conn, run_id: int, cursor: CaseCursor) -> None:
        # A resumed run reads again; a held or cancelled run's cases go too.
        await case_store.clear_case_staging(conn, run_id, self.feed.full_id)
        producer = case_producer(self.feed, self.fetcher, self.stats,
                                 StoredDocuments(conn, self.feed.full_id))
        found: dict[str, CaseRecord] = {}
        self.reporter.phase("fetch", None)
        async for document in self.until_paused(producer.documents(since=cursor.since)):
            await self._remember(conn, run_id, document, cursor)
            if document.stage:
                for case in document.cases:
                    earlier = found.get(case.case_number)
                    found[case.case_number] = case if earlier is None else combine(earlier, case)
            self.reporter.advance(1, len(document.cases))
        self.pause_point()  # a resumed case run reads again (its documents answer 304)
        await case_store.stage_cases(conn, run_id, list(found.values()))
        cursor.complete = producer.complete
        if producer.high_water_mark is not None:
            cursor.high_water_mark = producer.high_water_mark.isoformat()
        if not producer.complete:
            cursor.notes.append(producer.incomplete_because
                                or "the read was not complete: no case was retired")
        await runs.save_cursor(conn, run_id, cursor.to_json())
        await runs.set_phase(conn, run_id, "merge")
        self.phase = "merge"

    async def _remember(self, conn: Conn, run_id: int, document: CaseDocument,
                        cursor: CaseCursor) -> None:
        """Keep the document's validators, cases and quarantine; quarantine rejected rows."""
        cursor.notes.extend(document.warnings)
        if document.rejected:
            await case_store.quarantine_rejected(conn, self.feed.full_id, run_id, document.url,
                                                 document.rejected)
        if not document.remember or document.unchanged:
            return  # an unchanged document carried its cases forward: nothing to write
        await case_store.save_document(
            conn, self.feed.full_id, document.url, run_id=run_id, etag=document.etag,
            last_modified=document.last_modified, sha256=document.sha256, size=document.size,
            content_type=document.content_type, cases=document.cases,
            quarantine=document.quarantine, links=document.links)
        if document.quarantine is not None and not document.unchanged:
            log.warning("document quarantined", feed=self.feed.full_id, run=run_id,
                        url=document.url, reason=document.quarantine[0])
        if (document.quarantine is not None and document.quarantine[0] == "no_match"
                and not document.unchanged):
            cursor.notes.append(f"{document.url}: no case found by the pattern")

    async def _merge(self, conn: Conn, run_id: int, cursor: CaseCursor, *,
                     allow_mass_retire: bool) -> str | None:
        plan = await case_store.plan_case_merge(conn, run_id, self.feed.full_id,
                                                complete=cursor.complete)
        problem = retire_guard(plan.current, plan.retiring, self.feed.max_retire_fraction,
                               what="cases")
        if problem is not None and not cursor.mass_retire_allowed:
            if not allow_mass_retire:
                await case_store.clear_case_staging(conn, run_id, self.feed.full_id)
                return (f"held, nothing written: {problem}. If the portal is mid-publish, "
                        "wait: the next sync reads it again. If the cases really went, run "
                        f"`zoningsync sync {self.feed.full_id} --allow-mass-retire`")
            cursor.mass_retire_allowed = True
            cursor.notes.append(f"--allow-mass-retire let this run through: {problem}")
            await runs.save_cursor(conn, run_id, cursor.to_json())
        self.reporter.phase("merge", 1)
        counts = await case_store.merge_cases(conn, run_id, self.feed.full_id,
                                              self.feed.jurisdiction, complete=cursor.complete)
        self.reporter.advance(1, counts.inserted + counts.updated + counts.retired)
        return None

    async def _finish(self, conn: Conn, run_id: int, cursor: CaseCursor) -> None:
        staged = await case_store.count_staged_cases(conn, run_id)
        requests, retries, received = self.delta.take()
        async with conn.transaction():
            await runs.add_fetch_stats(conn, run_id, requests, retries, received)
            await case_store.set_cases_fetched(conn, run_id, staged)
            mark = cursor.high_water_mark
            await runs.finish_run(conn, run_id, oid_set_hash="",
                                  high_water_mark=datetime.fromisoformat(mark) if mark else None,
                                  seconds=self._elapsed(), staged=staged,
                                  warnings=cursor.notes)
            await feeds.mark_success(conn, self.feed.full_id, run_id)
            await case_store.clear_case_staging(conn, run_id, self.feed.full_id)
