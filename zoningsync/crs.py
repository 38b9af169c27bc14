"""Which coordinate system a layer uses, and the cached way from it to lon/lat.

ArcGIS servers describe a layer's CRS three ways: an EPSG code as `latestWkid`, an
older `wkid` that is EPSG or Esri's own code (102100, 102643...), or only ESRI
WKT (Kent County MI sends nothing else). They are tried in that order.

Resolving a CRS and building a transformer each cost milliseconds, paid once per
CRS: both are cached. A cached `Transformer` may be shared by the stage's worker
threads: since pyproj 3.1 it keeps one PROJ object per thread (pyproj issue #782,
"Multithread safe CRS, Proj, & Transformer"), and the project requires pyproj 3.6.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from zoningsync.errors import ZoningsyncError
from zoningsync.records import CrsSpec

FloatArray = npt.NDArray[np.float64]
ToLonLat = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

_WGS84 = CRS.from_epsg(4326)


class UnknownCrs(ZoningsyncError):
    """The layer's spatial reference names no coordinate system zoningsync knows."""


@lru_cache(maxsize=128)
def resolve_crs(spec: CrsSpec) -> CRS:
    """The CRS a server means: latestWkid as EPSG, wkid as EPSG then ESRI, then WKT."""
    codes: list[str] = []
    if spec.latest_wkid is not None:
        codes.append(f"EPSG:{spec.latest_wkid}")
    if spec.wkid is not None:
        codes += [f"EPSG:{spec.wkid}", f"ESRI:{spec.wkid}"]
    for code in codes:
        try:
            return CRS.from_user_input(code)
        except CRSError:
            continue
    if spec.wkt:
        try:
            return CRS.from_wkt(spec.wkt)
        except CRSError:
            pass
    raise UnknownCrs(f"unknown spatial reference: {_describe(spec)}")


@lru_cache(maxsize=128)
def _transformer(spec: CrsSpec) -> Transformer | None:
    source = resolve_crs(spec)
    if source.equals(_WGS84, ignore_axis_order=True):
        return None
    return Transformer.from_crs(source, _WGS84, always_xy=True)


def to_lonlat(spec: CrsSpec) -> ToLonLat | None:
    """A function taking x and y arrays in `spec` to lon and lat arrays (None: already there).

    Raises UnknownCrs when the spec resolves to nothing. Points PROJ cannot
    transform come back as inf, for the caller's range check to catch.
    """
    transformer = _transformer(spec)
    if transformer is None:
        return None

    def transform(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        lon, lat = transformer.transform(x, y)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    return transform


def _describe(spec: CrsSpec) -> str:
    given = [f"wkid {spec.wkid}" if spec.wkid is not None else "",
             f"latestWkid {spec.latest_wkid}" if spec.latest_wkid is not None else "",
             f"wkt {spec.wkt[:80]!r}" if spec.wkt else ""]
    return ", ".join(part for part in given if part) or "nothing"
