"""Cases out of Legistar's web API: which matters to ask for, and what a matter means.

Pure: the producer fetches `matters_url` page by page with `matter_query`
(`$top`/`$skip`, `$filter` on `MatterLastModifiedUtc` for incremental runs,
re-reading an overlap window because Legistar does not always bump that date),
and each matter becomes a case here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from zoningsync.cases.build import CaseBatch, CaseRow, finish_cases
from zoningsync.cases.options import CaseOptions, LegistarOptions

# Matter keys that are canonical case fields; every other key goes to attrs.
MATTER_FIELDS = {
    "MatterFile": "case_number",
    "MatterTypeName": "case_type",
    "MatterStatusName": "status",
    "MatterIntroDate": "filed_at",
    "MatterAgendaDate": "hearing_at",
    "MatterPassedDate": "decided_at",
}
TITLE_KEYS = ("MatterName", "MatterTitle")
OVERLAP = timedelta(days=7)


def matters_url(root: str, client: str) -> str:
    """`https://webapi.legistar.com/v1` + `pittsburgh` → the matters collection."""
    return f"{root.rstrip('/')}/{quote(client)}/matters"


def attachments_url(root: str, client: str, matter_id: int) -> str:
    return f"{root.rstrip('/')}/{quote(client)}/matters/{int(matter_id)}/attachments"


def matter_query(
    page: int, options: LegistarOptions, *, since: datetime | None = None
) -> dict[str, str]:
    """Query parameters for page `page` (0-based) of the matters modified at or after `since`.

    Ordered by MatterId so `$skip` pages are stable while matters are edited.
    """
    if page < 0:
        raise ValueError("page is 0-based and never negative")
    params = {
        "$top": str(options.page_size),
        "$skip": str(page * options.page_size),
        "$orderby": "MatterId",
    }
    clauses = []
    if options.matter_types:
        types = " or ".join(f"MatterTypeName eq '{_odata(name)}'"
                            for name in options.matter_types)
        clauses.append(f"({types})" if len(options.matter_types) > 1 else types)
    if since is not None:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        clauses.append(f"MatterLastModifiedUtc ge datetime'{stamp}'")
    if clauses:
        params["$filter"] = " and ".join(clauses)
    return params


def read_since(now: datetime, options: LegistarOptions, last_seen: datetime | None,
               *, overlap: timedelta = OVERLAP) -> datetime:
    """Where this run's `$filter` starts: the `since_days` window, or the last run minus overlap."""
    window = now - timedelta(days=options.since_days)
    if last_seen is None:
        return window
    return max(window, last_seen - overlap)


def _odata(text: str) -> str:
    return text.replace("'", "''")

def latest_modified(matters: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The newest `MatterLastModifiedUtc` of the matters (UTC; Legistar writes no zone).

    The next incremental read starts from it, on the server's clock rather than
    ours: a server whose clock or data lag ours would otherwise be read past.
    """
    latest: datetime | None = None
    for matter in matters:
        text = matter.get("MatterLastModifiedUtc")
        if not isinstance(text, str):
            continue
        try:
            stamp = datetime.fromisoformat(text.strip().removesuffix("Z"))
        except ValueError:
            continue
        stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        latest = stamp if latest is None or stamp > latest else latest
    return latest


def matter_values(matter: Mapping[str, Any], client: str | None = None) -> dict[str, Any]:
    """The raw case values of one matter: canonical fields by name, the rest as attrs."""
    values: dict[str, Any] = {}
    title_key = next((k for k in TITLE_KEYS if _present(matter.get(k))), None)
    for key, value in matter.items():
        if key in MATTER_FIELDS:
            values[MATTER_FIELDS[key]] = value
        elif key == title_key:
            values["title"] = value
        else:
            values[key] = value
    if client is not None and matter.get("MatterId") is not None:
        guid = matter.get("MatterGuid")
        link = f"https://{quote(client)}.legistar.com/LegislationDetail.aspx?ID={matter['MatterId']}"
        values["detail_url"] = link + (f"&GUID={guid}" if guid else "")
    return values


def read_matters(matters: Iterable[Mapping[str, Any]], options: CaseOptions) -> CaseBatch:
    """The cases of one page of matters (the decoded JSON list)."""
    client = options.legistar.client if options.legistar is not None else None
    rows = [CaseRow(values=matter_values(m, client), text=_text(m)) for m in matters]
    return finish_cases(rows, options)


def attachment_urls(attachments: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The PDF attachments of a matter (`MatterAttachmentHyperlink`), in order, once each."""
    urls: dict[str, None] = {}
    for attachment in attachments:
        link = attachment.get("MatterAttachmentHyperlink")
        if not isinstance(link, str) or not link.strip():
            continue
        name = str(attachment.get("MatterAttachmentFileName") or "")
        if name and not name.casefold().endswith(".pdf"):
            continue
        urls.setdefault(link.strip(), None)
    return tuple(urls)


def _present(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _text(matter: Mapping[str, Any]) -> str:
    return " ".join(str(v) for v in matter.values() if isinstance(v, str))
