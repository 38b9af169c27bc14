"""A Legistar-shaped web API over the county's cases (`/legistar/v1/{client}/...`).

Matters are JSON objects named and typed like Granicus' Legistar Web API v1
(MatterId, MatterGuid, MatterLastModifiedUtc, MatterRowVersion, MatterFile, …, dates
as zone-less ISO strings): one Ordinance per rezoning case, plus a few council
matters that are not about zoning (resolutions, contracts, proclamations, a
speed-limit ordinance), so a feed's type and title filters have something to drop.
`/matters` answers `$filter`, `$orderby`, `$top` (at most 1000, as Legistar caps
it) and `$skip` (see `odata`); `/matters/{id}/attachments` links the portal's
agenda PDFs with absolute URLs. A publish that changes a case moves its matter's
MatterLastModifiedUtc, MatterRowVersion and MatterVersion.
"""

from __future__ import annotations

import asyncio
import base64
import random
import struct
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson
from aiohttp import web

from zoningsync.portal.arcgis import Stats
from zoningsync.portal.cases import AGENDAS_PATH, APPROVED, OPEN, STATUSES, Case, Cases
from zoningsync.portal.county import STREETS
from zoningsync.portal.odata import ODataError, order_key, parse_filter, sort_rows
from zoningsync.portal.pages import DOCUMENT_TITLES

API_PATH = "/legistar/v1"
DEFAULT_CLIENT = "wake"
MAX_TOP = 1000
MATTER_TYPES = {"Ordinance": 1, "Resolution": 2, "Contract": 3, "Proclamation": 4}
OTHER_STATUSES = {"Adopted": 30, "Received and Filed": 31}
OTHER_MATTERS = (
    ("Resolution", "R", "Resolution authorizing a contract for the resurfacing of {street}"),
    ("Ordinance", "ORD", "Ordinance amending the City Code to set speed limits on {street}"),
    ("Contract", "C", "Contract with Triangle Paving Inc for sidewalk repairs on {street}"),
    ("Proclamation", "P", "Proclamation declaring {month} as Parks and Recreation Month"),
    ("Resolution", "R", "Resolution adopting budget amendment number {n}"),
)
MONTHS = ("March", "April", "May", "June", "July")
GUID_NAMESPACE = uuid.UUID("5b0f3a4e-2c1d-4f7a-9e55-6a1c0d9b7e21")
JSON = "application/json"


def legistar_time(value: date | datetime | None) -> str | None:
    """'2024-03-05T00:00:00', or with milliseconds when it has them, never a zone."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return f"{value.isoformat()}T00:00:00"
    naive = value.replace(tzinfo=None)
    return naive.isoformat(timespec="milliseconds" if naive.microsecond else "seconds")


def _row_version(matter_id: int, revision: int) -> str:
    return base64.b64encode(struct.pack(">Q", (matter_id << 16) + revision)).decode()


def _guid(seed: int, matter_id: int) -> str:
    return str(uuid.uuid5(GUID_NAMESPACE, f"{seed}:{matter_id}")).upper()


def _matter(seed: int, matter_id: int, modified: datetime, revision: int,
            **fields: Any) -> dict[str, Any]:
    """A matter object with every property the real API answers, in its order."""
    matter: dict[str, Any] = {
        "MatterId": matter_id, "MatterGuid": _guid(seed, matter_id),
        "MatterLastModifiedUtc": legistar_time(modified),
        "MatterRowVersion": _row_version(matter_id, revision),
        "MatterFile": None, "MatterName": None, "MatterTitle": None,
        "MatterTypeId": None, "MatterTypeName": None, "MatterStatusId": None,
        "MatterStatusName": None, "MatterBodyId": None, "MatterBodyName": None,
        "MatterIntroDate": None, "MatterAgendaDate": None, "MatterPassedDate": None,
        "MatterEnactmentDate": None, "MatterEnactmentNumber": None, "MatterRequester": None,
        "MatterNotes": None, "MatterVersion": str(revision), "MatterCost": None,
        "MatterText1": None, "MatterText2": None, "MatterText3": None, "MatterText4": None,
        "MatterText5": None, "MatterDate1": None, "MatterDate2": None,
        "MatterEXText1": None, "MatterEXText2": None, "MatterEXDate1": None,
        "MatterEXDate2": None, "MatterAgiloftId": 0, "MatterReference": None,
        "MatterRestrictViewViaWeb": False, "MatterReports": [],
    }
    matter.update(fields)
    return matter


def case_matter(seed: int, case: Case) -> dict[str, Any]:
    approved = case.status == APPROVED
    body = ("Planning Commission", 138) if case.status in OPEN else ("City Council", 139)
    return _matter(
        seed, case.matter_id, case.modified, case.revision,
        MatterFile=case.number, MatterName=case.address, MatterTitle=case.title,
        MatterTypeId=MATTER_TYPES["Ordinance"], MatterTypeName="Ordinance",
        MatterStatusId=10 + STATUSES.index(case.status), MatterStatusName=case.status,
        MatterBodyId=body[1], MatterBodyName=body[0],
        MatterIntroDate=legistar_time(case.filed), MatterAgendaDate=legistar_time(case.hearing),
        MatterPassedDate=legistar_time(case.decided) if approved else None,
        MatterEnactmentDate=legistar_time(case.decided) if approved else None,
        MatterEnactmentNumber=f"ORD-{case.decided.year}-{case.serial:04d}"
        if approved and case.decided else None,
        MatterRequester=case.applicant, MatterNotes=case.case_type,
        MatterText1=", ".join(case.parcel_ids) or None, MatterText2=f"{case.acreage:.2f}",
        MatterText3=case.from_zoning, MatterText4=case.to_zoning)


def other_matters(seed: int, count: int) -> list[dict[str, Any]]:
    """Council business that is not about zoning; it never changes."""
    rng = random.Random(f"legistar:{seed}")
    matters = []
    for index in range(count):
        type_name, prefix, title = OTHER_MATTERS[index % len(OTHER_MATTERS)]
        intro = date(2024, 1, 2) + (date(2024, 8, 1) - date(2024, 1, 2)) * rng.random()
        passed = intro.toordinal() + rng.randint(7, 28)
        status = "Adopted" if index % 4 else "Received and Filed"
        text = title.format(street=rng.choice(STREETS).title(), month=rng.choice(MONTHS),
                            n=rng.randint(2, 9))
        matter_id = 4001 + 2 * index
        modified = datetime.combine(date.fromordinal(passed), time(9)) + timedelta(
            minutes=rng.randint(0, 600))
        matters.append(_matter(
            seed, matter_id, modified, 1,
            MatterFile=f"{prefix}-2024-{index + 1:03d}", MatterName=text[:40], MatterTitle=text,
            MatterTypeId=MATTER_TYPES[type_name], MatterTypeName=type_name,
            MatterStatusId=OTHER_STATUSES[status], MatterStatusName=status,
            MatterBodyId=139, MatterBodyName="City Council",
            MatterIntroDate=legistar_time(intro),
            MatterPassedDate=legistar_time(date.fromordinal(passed))))
    return matters


PROPERTIES = tuple(_matter(0, 0, datetime(2024, 1, 1), 1))


class LegistarApi:
    """The `/legistar/v1/{client}` routes over the cases."""

    def __init__(self, cases: Cases, stats: Stats, worker: Executor,
                 client: str = DEFAULT_CLIENT) -> None:
        self.cases = cases
        self.stats = stats
        self.worker = worker
        self.client = client
        self.others = other_matters(cases.seed, max(6, len(cases.cases) // 5))

    def routes(self) -> list[web.RouteDef]:
        base = API_PATH + "/{client}/matters"
        return [
            web.get(base, self.matters),
            web.get(base + r"/{id:\d+}", self.matter),
            web.get(base + r"/{id:\d+}/attachments", self.attachments),
        ]

    def all_matters(self) -> list[dict[str, Any]]:
        seed = self.cases.seed
        return sorted([case_matter(seed, c) for c in self.cases.cases] + self.others,
                      key=lambda matter: int(matter["MatterId"]))

    async def matters(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        return await self._answer(request, lambda: self._query(query))

    async def matter(self, request: web.Request) -> web.Response:
        wanted = int(request.match_info["id"])
        return await self._answer(request, lambda: self._one(wanted))

    async def attachments(self, request: web.Request) -> web.Response:
        wanted = int(request.match_info["id"])
        origin = f"{request.scheme}://{request.host}"
        return await self._answer(request, lambda: self._attachments(wanted, origin))

    # -- answers (run in the worker thread) --------------------------------------------

    def _query(self, query: dict[str, str]) -> Any:
        rows = self.all_matters()
        if text := query.get("$filter", "").strip():
            keep = parse_filter(text, PROPERTIES)
            rows = [row for row in rows if keep(row)]
        if text := query.get("$orderby", "").strip():
            rows = sort_rows(rows, order_key(text, PROPERTIES))
        top = min(MAX_TOP, _count(query, "$top", MAX_TOP))
        skip = _count(query, "$skip", 0)
        return rows[skip: skip + top]

    def _one(self, matter_id: int) -> Any:
        for matter in self.all_matters():
            if matter["MatterId"] == matter_id:
                return matter
        raise _not_found(matter_id)

    def _attachments(self, matter_id: int, origin: str) -> Any:
        case = next((c for c in self.cases.cases if c.matter_id == matter_id), None)
        if case is None:
            if any(m["MatterId"] == matter_id for m in self.others):
                return []
            raise _not_found(matter_id)
        return [{
            "MatterAttachmentId": matter_id * 10 + k,
            "MatterAttachmentGuid": _guid(self.cases.seed, matter_id * 10 + k),
            "MatterAttachmentLastModifiedUtc": legistar_time(case.modified),
            "MatterAttachmentRowVersion": _row_version(matter_id * 10 + k, case.revision),
            "MatterAttachmentName": DOCUMENT_TITLES[name],
            "MatterAttachmentHyperlink": f"{origin}{AGENDAS_PATH}/{name}",
            "MatterAttachmentFileName": name,
            "MatterAttachmentMatterVersion": str(case.revision),
            "MatterAttachmentIsHyperlink": False, "MatterAttachmentBinary": None,
            "MatterAttachmentIsSupportingDocument": True,
            "MatterAttachmentShowOnInternetPage": True, "MatterAttachmentIsMinuteOrder": False,
            "MatterAttachmentIsBoardLetter": False, "MatterAttachmentAgiloftId": 0,
            "MatterAttachmentDescription": None, "MatterAttachmentPrintWithReports": False,
            "MatterAttachmentSort": k,
        } for k, name in enumerate(case.documents)]

    # -- plumbing ----------------------------------------------------------------------

    async def _answer(self, request: web.Request, build: Callable[[], Any]) -> web.Response:
        self.stats.record("legistar")
        if request.match_info["client"] != self.client:
            return _error(404, f"No client named '{request.match_info['client']}'.")
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(self.worker, build)
        except ODataError as exc:
            return _error(400, f"The query specified in the URI is not valid. {exc}")
        return web.Response(body=orjson.dumps(data), content_type=JSON, charset="utf-8")


def _count(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ODataError(f"Invalid value '{raw}' for {name}.") from None
    if value < 0:
        raise ODataError(f"{name} cannot be negative.")
    return value


def _not_found(matter_id: int) -> web.HTTPNotFound:
    return web.HTTPNotFound(body=orjson.dumps({"Message": f"No matter with id {matter_id}."}),
                            content_type=JSON)


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"Message": message}),
                        content_type=JSON, charset="utf-8")
