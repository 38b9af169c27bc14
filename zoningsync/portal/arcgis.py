"""The ArcGIS REST side of the portal: service, layer metadata and `/query` routes.

Paths: `/arcgis/rest/services/Wake/FeatureServer` (service info),
`.../FeatureServer/{layer}` (layer metadata, `f=json|pjson`) and
`.../FeatureServer/{layer}/query`, GET or POST (form); with the `change_tracking`
behaviour, `.../FeatureServer/extractChanges` (POST) and its jobs
(`zoningsync.portal.changes`). Every request is counted in `Stats` (a query for
ids only or keys only also under `query_ids` / `query_keys`), then meets the
behaviours: latency, the token check, and one seeded fault draw. Query work runs
in the portal's single worker thread, which also runs publish and republish, so
a page is never built from a half-published county.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from zoningsync.portal.answers import AnswerCache, answer_in
from zoningsync.portal.behaviours import Behaviours, Fault
from zoningsync.portal.changes import ChangeTracker
from zoningsync.portal.county import County, Layer
from zoningsync.portal.query import QueryError, error_body, run_query, truthy

SERVICE_PATH = "/arcgis/rest/services/Wake/FeatureServer"
MAX_ARRIVALS = 100_000
FIREWALL_PAGE = (b"<!DOCTYPE html><html><head><title>Request Rejected</title></head><body>"
                 b"<h1>The requested URL was rejected.</h1><p>Please consult with your "
                 b"administrator. Your support ID is: 1234567890123456789</p></body></html>")
JSON = "application/json"


@dataclass
class Stats:
    """Requests per path kind, and arrival times (monotonic s) for politeness tests."""

    requests: dict[str, int] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)

    def record(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1
        if len(self.arrivals) < MAX_ARRIVALS:
            self.arrivals.append(time.monotonic())

    def count(self, kind: str) -> None:
        """Count a request under a second kind too (its arrival is recorded once)."""
        self.requests[kind] = self.requests.get(kind, 0) + 1

    def reset(self) -> None:
        self.requests.clear()
        self.arrivals.clear()


class FeatureService:
    """The ArcGIS routes over one county, its behaviours and its worker thread."""

    def __init__(self, county: County, behaviours: Behaviours, stats: Stats,
                 worker: Executor, answers: AnswerCache | None = None) -> None:
        self.county = county
        self.behaviours = behaviours
        self.stats = stats
        self.worker = worker
        self.tracker = ChangeTracker(county)
        self.answers = answers

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", SERVICE_PATH, self.service),
            web.route("*", SERVICE_PATH + r"/{layer:\d+}", self.metadata),
            web.route("*", SERVICE_PATH + r"/{layer:\d+}/query", self.query),
            web.post(SERVICE_PATH + "/extractChanges", self.extract_changes),
            web.get(SERVICE_PATH + "/extractChanges/jobs/{job}", self.job_status),
            web.get(SERVICE_PATH + "/extractChanges/jobs/{job}/result", self.job_result),
        ]

    # -- routes ------------------------------------------------------------------------

    async def service(self, request: web.Request) -> web.StreamResponse:
        if self.behaviours.service_root_error:
            self.stats.record("service")
            return _json(error_body(500, "Service info unavailable.", []))
        return await self._answer(request, "service", self._service_info)

    async def metadata(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "metadata", self._layer_info)

    async def query(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        if truthy(params, "returnIdsOnly"):
            self.stats.count("query_ids")
        elif (params.get("returnGeometry", "").lower() == "false"
              and not truthy(params, "returnCountOnly")):
            self.stats.count("query_keys")
        return await self._answer(request, "query", self._query)

    async def extract_changes(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request, "extract", self._extract)
        body = response.body if isinstance(response, web.Response) else None
        if (self.behaviours.extract_async and isinstance(body, bytes)
                and self.behaviours.change_tracking):
            job = await asyncio.get_running_loop().run_in_executor(
                self.worker, self.tracker.start_job, body)
            status_url = f"{request.url.origin()}{SERVICE_PATH}/extractChanges/jobs/{job}"
            return _json(orjson.dumps({"statusUrl": status_url}))
        return response

    async def job_status(self, request: web.Request) -> web.StreamResponse:
        self.stats.record("job")
        job = request.match_info["job"]
        status, _ = await asyncio.get_running_loop().run_in_executor(
            self.worker, self.tracker.poll_job, job)
        answer: dict[str, Any] = {"status": status}
        if status == "completed":
            answer["resultUrl"] = f"{request.url.with_query(None)}/result"
        return _json(orjson.dumps(answer))

    async def job_result(self, request: web.Request) -> web.StreamResponse:
        self.stats.record("job")
        _, body = await asyncio.get_running_loop().run_in_executor(
            self.worker, self.tracker.poll_job, request.match_info["job"])
        if body is None:
            return _json(error_body(400, "Job not found or not done.", []))
        return _json(body)

    # -- answers (run in the worker thread) --------------------------------------------

    def _service_info(self, layer: Layer | None, params: dict[str, str]) -> bytes:
        return _dumps(params, {
            "currentVersion": 10.91, "serviceDescription": "Wake County parcels (simulated)",
            "hasVersionedData": False, "supportsDisconnectedEditing": False,
            "maxRecordCount": self.behaviours.advertised_max_record_count(),
            "supportedQueryFormats": self._formats(), "capabilities": "Query",
            **(self.tracker.service_info() if self.behaviours.change_tracking else {}),
            "spatialReference": self.county.spatial_reference,
            "initialExtent": self.county.extent(), "fullExtent": self.county.extent(),
            "layers": [{"id": lyr.id, "name": lyr.name, "parentLayerId": -1,
                        "defaultVisibility": True, "subLayerIds": None,
                        "geometryType": "esriGeometryPolygon"} for lyr in self.county.layers],
            "tables": [],
        })

    def _layer_info(self, layer: Layer | None, params: dict[str, str]) -> bytes:
        assert layer is not None
        b = self.behaviours
        fields = [f.describe() for f in layer.fields]
        fields.append({"name": "SHAPE", "type": "esriFieldTypeGeometry", "alias": "SHAPE"})
        info: dict[str, Any] = {
            "currentVersion": 10.91, "id": layer.id, "name": layer.name,
            "type": "Feature Layer", "geometryType": "esriGeometryPolygon",
            "description": "", "copyrightText": "Wake County GIS (simulated)",
            "objectIdField": "OBJECTID", "globalIdField": "", "displayField": fields[1]["name"],
            "fields": fields,
            "maxRecordCount": b.advertised_max_record_count(),
            "standardMaxRecordCount": b.advertised_max_record_count(),
            "supportsPagination": b.pagination,
            "advancedQueryCapabilities": {
                "supportsPagination": b.pagination, "supportsOrderBy": True,
                "supportsDistinct": True, "supportsQueryWithResultType": b.pagination,
                "supportsReturningQueryExtent": True, "useStandardizedQueries": True,
            },
            "supportedQueryFormats": self._formats(),
            "useStandardizedQueries": True,
            "capabilities": "Query",
            "hasAttachments": False, "htmlPopupType": "esriServerHTMLPopupTypeNone",
            "extent": self.county.extent(),
            "sourceSpatialReference": self.county.spatial_reference,
        }
        if b.edit_tracking:
            info["editFieldsInfo"] = {
                "creationDateField": "", "creatorField": "",
                "editDateField": "LAST_EDITED_DATE", "editorField": "", "dateFieldsTimeReference":
                {"timeZone": "UTC", "respectsDaylightSaving": False},
            }
        if b.change_tracking:
            info["serverGens"] = self.tracker.layer_gens()
        if b.no_oid_field_name:
            del info["objectIdField"]
        return _dumps(params, info)

    def _query(self, layer: Layer | None, params: dict[str, str]) -> bytes:
        assert layer is not None
        try:
            return run_query(self.county, layer, params, self.behaviours)
        except QueryError as exc:
            return error_body(400, "Unable to complete operation.", exc.details)

    def _extract(self, layer: Layer | None, params: dict[str, str]) -> bytes:
        if not self.behaviours.change_tracking:
            return error_body(400, "Requested operation is not supported by this service.",
                              [])
        try:
            return self.tracker.extract(params, self.behaviours)
        except QueryError as exc:
            return error_body(400, "Unable to complete operation.", exc.details)

    def _formats(self) -> str:
        return "JSON, geoJSON" if self.behaviours.geojson else "JSON"

    # -- plumbing ----------------------------------------------------------------------

    async def _answer(self, request: web.Request, kind: str,
                      build: Callable[[Layer | None, dict[str, str]], bytes]
                      ) -> web.StreamResponse:
        self.stats.record(kind)
        params = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: str(v) for k, v in form.items()})
        b = self.behaviours
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)
        if b.require_token and params.get("token") != b.require_token:
            return _json(error_body(498, "Invalid token.", []))
        fault = b.draw_fault()
        if fault in (Fault.TOO_MANY, Fault.UNAVAILABLE):
            status = 429 if fault is Fault.TOO_MANY else 503
            return web.Response(status=status, text="Too many requests, slow down.",
                                headers={"Retry-After": str(b.retry_after_s)})
        if fault is Fault.ERROR_JSON:
            return _json(error_body(500, "Error performing query operation", []))
        if fault is Fault.HTML:
            return web.Response(body=FIREWALL_PAGE, content_type="text/html")
        layer = None
        if "layer" in request.match_info:
            index = int(request.match_info["layer"])
            if index >= len(self.county.layers):
                return _json(error_body(400, "Invalid or missing input parameters.", []))
            layer = self.county.layers[index]
        body = await answer_in(self.worker, self.answers, kind, layer, params, build)
        if fault is Fault.TRUNCATE:
            return await _truncated(request, body)
        return _json(body)


def _dumps(params: dict[str, str], data: Any) -> bytes:
    pretty = params.get("f", "").lower() == "pjson"
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 if pretty else 0)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=JSON, charset="utf-8")


async def _truncated(request: web.Request, body: bytes) -> web.StreamResponse:
    """Promise the whole body, send half, then drop the connection."""
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return response
