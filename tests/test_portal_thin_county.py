"""A thin county: the same parcels as the wide one, 8 fields, one 5-point ring each."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import numpy as np
import orjson
import pytest

from zoningsync.portal.county import THIN_FIELDS, County


@pytest.fixture(scope="module")
def thin() -> County:
    return County(3000, seed=4, shape="thin")


def every_row(county: County) -> np.ndarray:
    return np.nonzero(county.parcels.live())[0].astype(np.int64)


def test_a_thin_county_serves_eight_fields(thin: County) -> None:
    assert [field.name for field in thin.parcels.fields] == list(THIN_FIELDS)
    assert len(THIN_FIELDS) == 8


def test_every_thin_parcel_is_one_closed_ring_of_five_points(thin: County) -> None:
    for rings in thin.rings(thin.parcels, every_row(thin)):
        assert rings is not None and len(rings) == 1
        assert len(rings[0]) == 5 and rings[0][0] == rings[0][-1]


def test_parcels_added_by_a_publish_are_thin_too() -> None:
    county = County(500, seed=4, shape="thin")
    added = county.publish(0.1, seed=2)["added"]
    rows = every_row(county)[-added:]
    assert all(rings is not None and len(rings) == 1 and len(rings[0]) == 5
               for rings in county.rings(county.parcels, rows))


def test_thin_and_wide_counties_hold_the_same_parcels_and_zoning(thin: County) -> None:
    wide = County(3000, seed=4)
    rows = every_row(wide)
    for name in ("PIN", "ZONING", "ZONE_DESC", "LAST_EDITED_DATE"):
        assert thin.parcels.columns[name].serve(rows) == wide.parcels.columns[name].serve(rows)


def test_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        County(10, shape="narrow")


def test_the_portal_command_serves_a_thin_county_when_asked() -> None:
    portal = subprocess.Popen(
        [sys.executable, "-m", "zoningsync.portal", "--port", "0", "--parcels", "200",
         "--shape", "thin", "--cases", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        assert portal.stdout is not None
        base_url = portal.stdout.readline().strip()
        layer = base_url + "/arcgis/rest/services/Wake/FeatureServer/0?f=json"
        with urllib.request.urlopen(layer, timeout=30) as answer:
            fields = [f["name"] for f in orjson.loads(answer.read())["fields"]]
        assert fields == [*THIN_FIELDS, "SHAPE"]
    finally:
        portal.terminate()
        portal.wait(timeout=30)
