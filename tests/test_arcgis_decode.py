"""Pages of features decoded with their geometries left as JSON text."""

from __future__ import annotations

import orjson
import pytest

from zoningsync.producers.arcgis.decode import decode_features
from zoningsync.records import RawJson

GEOMETRY = {"rings": [[[-78.6, 35.7], [-78.6, 35.8], [-78.5, 35.8], [-78.6, 35.7]]]}


def test_a_page_keeps_each_geometry_as_its_json_text_and_decodes_the_rest() -> None:
    answer = {"objectIdFieldName": "OBJECTID", "spatialReference": {"wkid": 2264},
              "features": [{"attributes": {"OBJECTID": 1, "PIN": "07 ", "BIG": 2**63 - 1},
                            "geometry": GEOMETRY},
                           {"attributes": {"OBJECTID": 2}, "geometry": None},
                           {"attributes": {"OBJECTID": 3}}],
              "exceededTransferLimit": True}
    decoded = decode_features(orjson.dumps(answer))
    assert decoded["spatialReference"] == {"wkid": 2264}
    first, second, third = decoded["features"]
    assert first["attributes"] == {"OBJECTID": 1, "PIN": "07 ", "BIG": 2**63 - 1}
    assert type(first["geometry"]) is RawJson
    assert orjson.loads(bytes(first["geometry"])) == GEOMETRY
    assert second == {"attributes": {"OBJECTID": 2}, "geometry": None}
    assert third == {"attributes": {"OBJECTID": 3}}


@pytest.mark.parametrize("answer", [
    {"error": {"code": 500, "message": "Error performing query operation"}},
    {"error": {"code": 498, "message": "Invalid token"}, "features": []},
    {"features": [{"attributes": {"OBJECTID": 1}, "geometry": GEOMETRY, "centroid": {}}]},
    {"features": [None]},
    {"features": {"not": "a list"}},
    [1, 2, 3],
])
def test_an_answer_of_another_shape_is_decoded_whole_as_it_came(answer: object) -> None:
    assert decode_features(orjson.dumps(answer)) == answer


def test_text_that_is_not_json_fails_as_orjson_fails() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        decode_features(b'{"features": [')
