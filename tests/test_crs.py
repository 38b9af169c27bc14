"""CRS resolution: the codes and WKT real ArcGIS servers send, checked at known points."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.portal_helpers import FIXTURES
from zoningsync.crs import UnknownCrs, resolve_crs, to_lonlat
from zoningsync.records import CrsSpec


def lonlat(spec: CrsSpec, x: float, y: float) -> tuple[float, float]:
    transform = to_lonlat(spec)
    assert transform is not None
    lon, lat = transform(np.array([x]), np.array([y]))
    return float(lon[0]), float(lat[0])


@pytest.mark.parametrize(("spec", "x", "y", "expected"), [
    # Projection origins (false easting/northing in US feet) land on their lon/lat origin.
    (CrsSpec(wkid=102695, latest_wkid=2255), 2_296_583.333, 0.0, (-90.333333, 29.5)),
    (CrsSpec(wkid=102643, latest_wkid=2227), 6_561_666.667, 1_640_416.667, (-120.5, 36.5)),
    (CrsSpec(wkid=102100, latest_wkid=3857), -8_756_000.0, 0.0,
     (math.degrees(-8_756_000 / 6_378_137), 0.0)),
    (CrsSpec(wkid=102100), -8_756_000.0, 0.0, (math.degrees(-8_756_000 / 6_378_137), 0.0)),
])
def test_codes_from_layer_metadata_resolve_and_reproject(
        spec: CrsSpec, x: float, y: float, expected: tuple[float, float]) -> None:
    lon, lat = lonlat(spec, x, y)
    assert lon == pytest.approx(expected[0], abs=1e-5)
    assert lat == pytest.approx(expected[1], abs=1e-5)


def test_nc_state_plane_feet_point_lands_in_raleigh() -> None:
    lon, lat = lonlat(CrsSpec(wkid=2264, latest_wkid=2264), 2_100_000, 740_000)
    assert lon == pytest.approx(-78.663, abs=0.001)
    assert lat == pytest.approx(35.783, abs=0.001)


def test_esri_wkt_alone_resolves_kent_county_state_plane() -> None:
    answer = json.loads((FIXTURES / "us-mi-kent/us-mi-kent-0.json").read_text())
    spec = CrsSpec.from_esri(answer["spatialReference"])
    assert spec is not None and spec.wkid is None and spec.wkt
    crs = resolve_crs(spec)
    assert "Michigan_South" in crs.name
    lon, lat = lonlat(spec, 13_123_359.58005249, 0.0)  # the false easting, international feet
    assert lon == pytest.approx(-84.366667, abs=1e-5)
    assert lat == pytest.approx(41.5, abs=1e-5)


def test_latest_wkid_wins_over_a_stale_wkid() -> None:
    assert resolve_crs(CrsSpec(wkid=102100, latest_wkid=3857)).to_epsg() == 3857


def test_wgs84_needs_no_transform() -> None:
    assert to_lonlat(CrsSpec(wkid=4326, latest_wkid=4326)) is None


@pytest.mark.parametrize("spec", [CrsSpec(wkid=999999), CrsSpec(wkt="PROJCS[nonsense"),
                                  CrsSpec()])
def test_an_unknown_crs_raises_naming_what_was_given(spec: CrsSpec) -> None:
    with pytest.raises(UnknownCrs, match="unknown spatial reference"):
        resolve_crs(spec)

