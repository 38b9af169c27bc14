"""One `/query` request against one layer, as a plain function for the thread pool.

`run_query` takes the request's parameters and the current behaviours and gives
the answer body. It is pure CPU work (filtering numpy columns, generating
footprints, serializing with orjson), so the HTTP side runs it in its worker
thread and the event loop stays free. Bad parameters raise `QueryError`, which
the HTTP side sends as ArcGIS error JSON with HTTP 200, like ArcGIS Server does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from zoningsync.portal.behaviours import Behaviours
from zoningsync.portal.county import County, Layer
from zoningsync.portal.shapes import to_geojson
from zoningsync.portal.where import WhereError, evaluate, parse

IntArray = npt.NDArray[np.int64]
OID = "OBJECTID"


class QueryError(ValueError):
    """A query parameter ArcGIS would refuse; `details` is what ArcGIS would say."""

    def __init__(self, parameter: str) -> None:
        super().__init__(f"'{parameter}' parameter is invalid")
        self.details = [f"'{parameter}' parameter is invalid"]


def error_body(code: int, message: str, details: list[str] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error})


def truthy(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "").strip().lower() == "true"


def run_query(county: County, layer: Layer, params: Mapping[str, str],
              behaviours: Behaviours) -> bytes:
    """The answer body for one query; raises QueryError on a parameter ArcGIS refuses."""
    fmt = params.get("f", "html").strip().lower() or "html"
    if fmt not in ("json", "pjson", "geojson") or (fmt == "geojson" and not behaviours.geojson):
        raise QueryError("f")
    rows = _select(layer, params, behaviours)
    option = orjson.OPT_INDENT_2 if fmt == "pjson" else 0
    if truthy(params, "returnCountOnly"):
        return orjson.dumps({"count": len(rows)}, option=option)
    oids = layer.data[OID]
    if truthy(params, "returnIdsOnly"):
        return orjson.dumps({"objectIdFieldName": OID,
                             "objectIds": np.sort(oids[rows]).tolist()}, option=option)
    rows = _order(layer, rows, params.get("orderByFields", ""))
    page, exceeded = _page(rows, params, behaviours)
    names = _out_fields(layer, params.get("outFields", ""))
    attributes = layer.attributes(page, names)
    geometry = params.get("returnGeometry", "true").strip().lower() != "false"
    if fmt == "geojson":
        return _geojson(county, layer, page, attributes, geometry, exceeded)
    features: list[dict[str, Any]] = [{"attributes": a} for a in attributes]
    if geometry:
        for feature, rings in zip(features, county.rings(layer, page), strict=True):
            if rings is not None:
                feature["geometry"] = {"rings": rings}
    answer: dict[str, Any] = {
        "objectIdFieldName": OID, "globalIdFieldName": "",
        "geometryType": "esriGeometryPolygon",
        "spatialReference": county.spatial_reference,
        "fields": [layer.columns[n].field.describe() for n in names],
        "features": features,
    }
    if exceeded is not None:
        answer["exceededTransferLimit"] = exceeded
    return orjson.dumps(answer, option=option)


def _select(layer: Layer, params: Mapping[str, str], behaviours: Behaviours) -> IntArray:
    where = params.get("where", "").strip()
    mask = layer.live()
    if where or not params.get("objectIds", "").strip():
        try:
            expr = parse(where or "1=1", timestamp_literals=behaviours.timestamp_literals)
            mask = mask & evaluate(expr, layer.columns.get, layer.size)
        except WhereError as exc:
            raise QueryError("where") from exc
    ids_text = params.get("objectIds", "").strip()
    if ids_text:
        try:
            wanted = np.array([int(v) for v in ids_text.split(",") if v.strip()],
                              dtype=np.int64)
        except ValueError as exc:
            raise QueryError("objectIds") from exc
        mask = mask & np.isin(layer.data[OID], wanted)
    return np.nonzero(mask)[0].astype(np.int64)


def _order(layer: Layer, rows: IntArray, order_by: str) -> IntArray:
    """Rows sorted by `orderByFields` (OID ascending when absent, as servers do)."""
    keys: list[npt.NDArray[Any]] = []
    decided = False  # after an OID key, later keys cannot change the order
    for part in [p.strip() for p in order_by.split(",") if p.strip()]:
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise QueryError("orderByFields")
        column = layer.columns.get(words[0].upper())
        if column is None:
            raise QueryError("orderByFields")
        descending = len(words) == 2 and words[1].upper() == "DESC"
        if decided or (column.field.name == OID and not descending):
            decided = True  # OID ascending is the tie-break appended below anyway
            continue
        key = column.sort_key(rows)
        keys.append(_descending(key) if descending else key)
        decided = column.field.name == OID
    oids = layer.data[OID][rows]
    if not keys and bool(np.all(oids[1:] > oids[:-1])):
        return rows  # already in OID order, as storage usually is: skip the sort
    keys.append(oids)
    return rows[np.lexsort(keys[::-1])]


def _descending(key: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if key.dtype.kind in "iuf":
        return -key
    _, inverse = np.unique(key, return_inverse=True)
    return -inverse.astype(np.int64)


def _page(rows: IntArray, params: Mapping[str, str], behaviours: Behaviours
          ) -> tuple[IntArray, bool | None]:
    """The slice to return, and exceededTransferLimit (None: leave it out)."""
    limit = behaviours.page_limit()
    offset = 0
    if behaviours.pagination:  # old servers ignore both, returning the first rows
        offset = _int(params, "resultOffset", 0)
        limit = min(limit, _int(params, "resultRecordCount", limit) or limit)
    page = rows[offset:offset + limit]
    if behaviours.silent_cap:
        return page, False
    return page, (True if offset + len(page) < len(rows) else None)


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise QueryError(name) from exc
    if value < 0:
        raise QueryError(name)
    return value


def _out_fields(layer: Layer, out_fields: str) -> list[str]:
    """The served field names, in layer order, the OID field always first."""
    wanted = {f.strip().upper() for f in out_fields.split(",") if f.strip()}
    if "*" in wanted:
        return list(layer.columns)
    unknown = wanted - set(layer.columns)
    if unknown:
        raise QueryError("outFields")
    return [OID] + [name for name in layer.columns if name in wanted and name != OID]


def _geojson(county: County, layer: Layer, page: IntArray, attributes: list[dict[str, Any]],
             geometry: bool, exceeded: bool | None) -> bytes:
    shapes = county.rings(layer, page, wgs84=True) if geometry else [None] * len(page)
    features = [{"type": "Feature", "id": a[OID], "geometry": to_geojson(rings),
                 "properties": a} for a, rings in zip(attributes, shapes, strict=True)]
    answer: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if exceeded:
        answer["properties"] = {"exceededTransferLimit": True}
    return orjson.dumps(answer)
