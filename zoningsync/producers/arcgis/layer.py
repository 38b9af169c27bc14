"""Layer metadata (`<layer>?f=json`): what the server can do and how its data is shaped.

Every member is read as the server may really send it: absent, null, or of
another type than documented. What cannot be read is treated as absent, never
as a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zoningsync.errors import UpstreamRefused
from zoningsync.records import CrsSpec

OID_TYPE = "esriFieldTypeOID"
DEFAULT_MAX_RECORD_COUNT = 1000


@dataclass(frozen=True)
class LayerInfo:
    """What a run needs to know about a layer before asking it for rows."""

    url: str
    name: str
    oid_field: str
    edit_date_field: str | None
    geometry_type: str
    crs: CrsSpec | None
    max_record_count: int
    supports_pagination: bool
    supports_geojson: bool
    fields: Mapping[str, str]


def parse_layer(url: str, meta: Mapping[str, Any]) -> LayerInfo:
    listed = meta.get("fields")
    fields = {f["name"]: str(f.get("type", "")) for f in listed if isinstance(f, dict)
              and isinstance(f.get("name"), str)} if isinstance(listed, list) else {}
    declared = meta.get("objectIdField")
    oid_field = declared if isinstance(declared, str) and declared else next(
        (name for name, kind in fields.items() if kind == OID_TYPE), None)
    if not oid_field:
        raise UpstreamRefused(
            f"{url}: the layer declares no object id field (objectIdField or a field of type "
            f"{OID_TYPE}); zoningsync cannot page it reliably")
    edit_field = _mapping(meta.get("editFieldsInfo")).get("editDateField")
    if not isinstance(edit_field, str) or edit_field not in fields:
        edit_field = None
    advanced = _mapping(meta.get("advancedQueryCapabilities"))
    crs = (CrsSpec.from_esri(meta.get("sourceSpatialReference"))
           or CrsSpec.from_esri(_mapping(meta.get("extent")).get("spatialReference"))
           or CrsSpec.from_esri(meta.get("spatialReference")))
    formats = str(meta.get("supportedQueryFormats") or "").lower()
    return LayerInfo(
        url=url,
        name=str(meta.get("name") or ""),
        oid_field=oid_field,
        edit_date_field=edit_field,
        geometry_type=str(meta.get("geometryType") or ""),
        crs=crs,
        max_record_count=_max_record_count(meta.get("maxRecordCount")),
        supports_pagination=(meta.get("supportsPagination") is True
                             or advanced.get("supportsPagination") is True),
        supports_geojson="geojson" in formats,
        fields=fields,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _max_record_count(value: Any) -> int:
    """The server's page limit; absent or nonsense means ArcGIS's default of 1000."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_MAX_RECORD_COUNT
