"""Staging: geometry into features by binary COPY as EWKB, rejected records as JSON."""

from __future__ import annotations

from typing import Any

import asyncpg
import shapely

from zoningsync.records import QuarantineReason, RawJson, Rejected
from zoningsync.store.connect import connect
from zoningsync.store.staging import enable_features_copy, ewkb_4326, quarantine_records

SQUARE = shapely.MultiPolygon([shapely.box(-78.7, 35.7, -78.6, 35.8)])


async def test_ewkb_of_either_byte_order_is_read_by_postgis_in_epsg_4326(
        db: asyncpg.Connection[Any]) -> None:
    for byte_order in (0, 1):
        wkb = shapely.to_wkb(SQUARE, byte_order=byte_order)
        row = await db.fetchrow(
            "SELECT ST_SRID(g) AS srid, ST_AsBinary(g, 'NDR') AS wkb"
            " FROM (SELECT $1::bytea::geometry AS g) s", ewkb_4326(wkb))
        assert row is not None
        assert (row["srid"], row["wkb"]) == (4326, shapely.to_wkb(SQUARE, byte_order=1))


async def test_a_session_that_copies_features_reads_geometry_as_any_other(
        db_url: str, db: asyncpg.Connection[Any]) -> None:
    query = "SELECT ST_GeomFromText($1, 4326)"
    copying = await connect(db_url)
    try:
        await enable_features_copy(copying)
        assert await copying.fetchval(query, SQUARE.wkt) == await db.fetchval(query, SQUARE.wkt)
    finally:
        await copying.close()


def test_a_quarantined_record_keeps_a_geometry_still_in_json_text_as_json() -> None:
    raw = {"attributes": {"PIN": "07"}, "geometry": RawJson(b'{"rings":[[[1,2],[1,2]]]}')}
    rejected = Rejected("07", 1, QuarantineReason.UNREPAIRABLE_GEOMETRY, "ring 0", raw)
    [row] = quarantine_records("county/parcels", 7, [rejected])
    assert row[-1] == {"attributes": {"PIN": "07"}, "geometry": {"rings": [[[1, 2], [1, 2]]]}}
