"""The planning department's web site: case pages, agenda PDFs and robots.txt.

Every answer is a `Resource` built once per cases version (in the portal's worker
thread, which also runs publish, so no page mixes two versions) and then served
from memory, with an ETag (a hash of the body: it changes only when the content
does) and a Last-Modified (the publish that last changed that content), answering
304 to a matching If-None-Match, or, without one, to an If-Modified-Since not
older than it. Behaviours read per request: `cases_layout_changed` serves the
redesigned case list; `slow_pdf_ms` drips each PDF out over that many milliseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from zoningsync.portal import agendas, pages
from zoningsync.portal.arcgis import Stats
from zoningsync.portal.behaviours import Behaviours
from zoningsync.portal.cases import AGENDAS_PATH, CASES_PATH, MISSING, PLANNING_PATH, Cases

HTML_LIST = f"text/html; charset={pages.LIST_CHARSET}"
HTML = "text/html; charset=utf-8"
PDF = "application/pdf"
SLOW_CHUNKS = 8
Build = Callable[[], tuple[bytes, str]]


@dataclass(frozen=True)
class Resource:
    body: bytes
    content_type: str
    etag: str
    last_modified: datetime


class PlanningSite:
    """The HTML and PDF routes over the cases, with conditional GET."""

    def __init__(self, cases: Cases, behaviours: Behaviours, stats: Stats,
                 worker: Executor) -> None:
        self.cases = cases
        self.behaviours = behaviours
        self.stats = stats
        self.worker = worker
        self._version = cases.version
        self._built: dict[str, Resource] = {}
        self._validators: dict[str, tuple[str, datetime]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/robots.txt", self.robots),
            web.get(CASES_PATH, self.case_list),
            web.get(CASES_PATH + "/{number}", self.case_detail),
            web.get(AGENDAS_PATH, self.agenda_index),
            web.get(AGENDAS_PATH + "/{name}", self.agenda),
            web.get(PLANNING_PATH, self.home),
        ]

    # -- routes ----------------------------------------------------------------------

    async def robots(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "robots", "robots",
                                 lambda: (pages.ROBOTS_TXT, "text/plain; charset=utf-8"))

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(CASES_PATH)

    async def case_list(self, request: web.Request) -> web.StreamResponse:
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            raise web.HTTPBadRequest(text="page must be a number") from None
        if not 1 <= page <= pages.page_count(self.cases):
            raise web.HTTPNotFound(text=f"there is no page {page}")
        changed = self.behaviours.cases_layout_changed
        return await self._serve(
            request, "cases", f"list:{page}:{changed}",
            lambda: (pages.case_list(self.cases, page, layout_changed=changed), HTML_LIST))

    async def case_detail(self, request: web.Request) -> web.StreamResponse:
        number = request.match_info["number"]

        def build() -> tuple[bytes, str]:
            case = self.cases.find(number)
            if case is None:
                raise web.HTTPNotFound(text=f"no case {number}")
            return pages.case_detail(case), HTML

        return await self._serve(request, "case", f"case:{number}", build)

    async def agenda_index(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "agendas", "agendas",
                                 lambda: (pages.agenda_index(self.cases), HTML))

    async def agenda(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == MISSING:
            return await self._serve(request, "agenda", name, lambda: (pages.NOT_PDF_PAGE, HTML))
        builder = agendas.BUILDERS.get(name)
        if builder is None:
            raise web.HTTPNotFound(text=f"no agenda {name}")
        return await self._serve(request, "agenda", name, lambda: (builder(self.cases), PDF),
                                 slow_ms=self.behaviours.slow_pdf_ms)

    # -- plumbing --------------------------------------------------------------------

    def _resource(self, key: str, build: Build) -> Resource:
        """The current version's resource, built on first use (runs in the worker)."""
        if self.cases.version != self._version:
            self._built.clear()
            self._version = self.cases.version
        if key not in self._built:
            body, content_type = build()
            etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
            seen = self._validators.get(key)
            modified = seen[1] if seen is not None and seen[0] == etag else self.cases.clock
            self._validators[key] = (etag, modified)
            self._built[key] = Resource(body, content_type, etag, modified)
        return self._built[key]

    async def _serve(self, request: web.Request, kind: str, key: str, build: Build, *,
                     slow_ms: int = 0) -> web.StreamResponse:
        self.stats.record(kind)
        loop = asyncio.get_running_loop()
        resource = await loop.run_in_executor(self.worker, self._resource, key, build)
        headers = {"ETag": resource.etag, "Cache-Control": "private, max-age=0"}
        if _unchanged(request, resource):
            response = web.Response(status=304, headers=headers)
            response.last_modified = resource.last_modified
            return response
        if slow_ms and request.method != "HEAD":
            return await _drip(request, resource, headers, slow_ms)
        response = web.Response(body=resource.body, headers=headers)
        response.headers["Content-Type"] = resource.content_type
        response.last_modified = resource.last_modified
        return response


def _unchanged(request: web.Request, resource: Resource) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or resource.etag in tags
    since = request.if_modified_since
    return since is not None and resource.last_modified.replace(microsecond=0) <= since


async def _drip(request: web.Request, resource: Resource, headers: dict[str, str],
                slow_ms: int) -> web.StreamResponse:
    """The whole body, promised up front, sent in pieces over `slow_ms`."""
    response = web.StreamResponse(headers=headers)
    response.content_type = resource.content_type
    response.content_length = len(resource.body)
    response.last_modified = resource.last_modified
    await response.prepare(request)
    step = -(-len(resource.body) // SLOW_CHUNKS)
    for start in range(0, len(resource.body), step):
        await asyncio.sleep(slow_ms / 1000 / SLOW_CHUNKS)
        await response.write(resource.body[start:start + step])
    await response.write_eof()
    return response
