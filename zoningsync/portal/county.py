"""A deterministic simulated county: Wake County, NC parcels and zoning districts.

`County(parcels, seed, crs)` is a pure function of its arguments. Parcels sit on a
grid centred on Raleigh that always spans a few tens of kilometres (slots 50 m
apart at a million parcels, further apart for small counties, like rural lots),
so H3 resolution 7 sees a few hundred cells at any size. Attributes are numpy
columns (about 90 bytes a parcel); footprints are generated when served
(`zoningsync.portal.shapes`). Shapes: 4–12 vertex jittered polygons, ~3% with a
courtyard hole, ~2% multipart, ~0.05% self-intersecting bow-ties, ~0.02% null,
and ~1% stacked condos (runs of parcels with one footprint and distinct PINs).

Layer shapes: `shape="wide"` (the default, above: 14 fields) or `shape="thin"`, a
layer like many small counties serve and the one where a per-row cost shows most:
the 8 fields of `THIN_FIELDS` and one 5-vertex ring (4 corners, closed) per parcel,
no holes, parts, bow-ties or nulls. Both shapes draw the same parcels on the same
grid, so a benchmark compares bytes per row, not different counties.

Versions: `publish(fraction, seed)` edits the columns in place (rezonings,
geometry revisions, owner changes, deletions as a mask, additions appended with
new OIDs) and stamps LAST_EDITED_DATE with a deterministic clock one day past the
previous version; `republish()` renumbers every OID, content unchanged. Only the
current version is served, and a version costs no copy of the county: the edited
rows change in place.

Layer 0 is "Parcels", layer 1 "Zoning Districts" (18 x 18 quads tiling the county).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from zoningsync.portal import shapes
from zoningsync.portal.columns import (
    NULL_MS,
    CategoryColumn,
    Column,
    DateOnlyColumn,
    Field,
    NumberColumn,
    TextColumn,
)
from zoningsync.portal.shapes import Grid, Projector

IntArray = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

COUNTY_SPAN_M = 36_000.0
MIN_SPACING_M = 50.0
GENERATION_BLOCK = 1 << 16
DISTRICTS_PER_SIDE = 18
BASE_EDIT_MS = 1_420_070_400_000  # 2015-01-01: base edit dates lie in 2015–2024
SPAN_EDIT_MS = 3_652 * 86_400_000
PUBLISH_CLOCK_MS = 1_735_689_600_000  # 2025-01-01, one day later per version
DAY_MS = 86_400_000
SQ_M_PER_ACRE = 4_046.856
SUPPORTED_CRS = (4326, 2264, 102100)
SHAPES = ("wide", "thin")
THIN_FIELDS = ("OBJECTID", "PIN", "ZONING", "ZONE_DESC", "SITE_ADDRESS", "ACRES", "LAND_VAL",
               "LAST_EDITED_DATE")
THIN_VERTICES = 4
SPATIAL_REFERENCES: dict[int, dict[str, int]] = {
    4326: {"wkid": 4326, "latestWkid": 4326},
    2264: {"wkid": 2264, "latestWkid": 2264},
    102100: {"wkid": 102100, "latestWkid": 3857},
}

ZONES = (
    ("R-4", "Residential-4"), ("R-6", "Residential-6"), ("R-10", "Residential-10"),
    ("RX-3", "Residential Mixed Use - 3 stories"), ("OX-3", "Office Mixed Use - 3 stories"),
    ("NX-3", "Neighborhood Mixed Use - 3 stories"), ("CX-3", "Commercial Mixed Use - 3 stories"),
    ("DX-12", "Downtown Mixed Use - 12 stories"), ("IX-3", "Industrial Mixed Use - 3 stories"),
    ("AP", "Agricultural Productive"), ("CM", "Conservation Management"),
    ("OP-5", "Office Park - 5 stories"), ("R-1", "Residential-1"), ("PD", "Planned Development"),
)
SURNAMES = ("SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS",
            "NGUYEN", "PATEL", "WILSON", "MOORE", "TAYLOR", "THOMAS", "JACKSON", "WHITE",
            "HARRIS", "MARTIN", "THOMPSON", "YOUNG", "ALLEN", "KING", "WRIGHT", "SCOTT")
GIVEN = ("JOHN A", "MARIA", "ROBERT & LINDA", "JAMES", "MARY E", "DAVID", "JENNIFER",
         "MICHAEL & SARAH", "THI", "LINDA K", "WILLIAM", "ELIZABETH", "RAJ", "KAREN")
COMPANIES = ("WAKE COUNTY", "CITY OF RALEIGH", "TRIANGLE HOLDINGS LLC",
             "OAK CITY PROPERTIES LLC", "NC STATE UNIVERSITY", "TOWN OF CARY",
             "CAPITAL AREA HOMES INC", "NEUSE RIVER PARTNERS LP")
STREETS = ("HILLSBOROUGH ST", "GLENWOOD AVE", "FAYETTEVILLE ST", "WAKE FOREST RD",
           "FALLS OF NEUSE RD", "SIX FORKS RD", "CAPITAL BLVD", "NEW BERN AVE", "OBERLIN RD",
           "LEAD MINE RD", "CREEDMOOR RD", "WESTERN BLVD", "POOLE RD", "ROCK QUARRY RD")
CITIES = ("RALEIGH", "CARY", "APEX", "WAKE FOREST", "GARNER", "HOLLY SPRINGS",
          "FUQUAY-VARINA", "KNIGHTDALE", "MORRISVILLE", "WENDELL", "ZEBULON", "ROLESVILLE")


def _owner_labels() -> list[str | None]:
    """Owner names as a county prints them: some CHAR-padded with trailing blanks."""
    names = [f"{s} {g}" for s in SURNAMES for g in GIVEN] + list(COMPANIES)
    return [name.ljust(32) if i % 7 == 0 else name for i, name in enumerate(names)]


OWNER_LABELS = _owner_labels()


class Layer:
    """One layer: numpy columns by name, the served fields, and a deleted-rows mask."""

    def __init__(self, layer_id: int, name: str, data: dict[str, npt.NDArray[Any]]) -> None:
        self.id = layer_id
        self.name = name
        self.data = data
        self.deleted: Mask = np.zeros(len(data["OBJECTID"]), dtype=bool)
        self.columns: dict[str, Column] = {}

    @property
    def size(self) -> int:
        return len(self.data["OBJECTID"])

    @property
    def fields(self) -> list[Field]:
        return [column.field for column in self.columns.values()]

    def live(self) -> Mask:
        return ~self.deleted

    def values(self, name: str) -> Callable[[], npt.NDArray[Any]]:
        """The current array of a stored column (publish may replace it)."""
        return lambda: self.data[name]

    def attributes(self, rows: IntArray, names: list[str]) -> list[dict[str, Any]]:
        """Each row's served attributes, in field order."""
        served = [self.columns[name].serve(rows) for name in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*served, strict=True)]


class County:
    """Parcels (layer 0) and zoning districts (layer 1) of one simulated county."""

    def __init__(self, parcels: int = 5000, seed: int = 1, crs: int = 4326,
                 shape: str = "wide") -> None:
        if crs not in SUPPORTED_CRS:
            raise ValueError(f"crs must be one of {SUPPORTED_CRS}, not {crs}")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, not {shape!r}")
        if parcels < 1:
            raise ValueError("a county needs at least one parcel")
        self.seed = seed
        self.crs = crs
        self.shape = shape
        self.version = 0
        cols = max(2, math.ceil(math.sqrt(parcels)))
        self.grid = Grid(cols, max(MIN_SPACING_M, COUNTY_SPAN_M / cols), seed)
        self.projector = Projector(crs)
        self.wgs84 = Projector(4326)
        self.parcels = Layer(0, "Parcels", self._parcel_data(parcels))
        self._describe_parcels()
        self.districts = Layer(1, "Zoning Districts", self._district_data())
        self._describe_districts()
        self.layers = (self.parcels, self.districts)

    @property
    def spatial_reference(self) -> dict[str, int]:
        return dict(SPATIAL_REFERENCES[self.crs])

    # -- generation ------------------------------------------------------------------

    def _parcel_data(self, n: int) -> dict[str, npt.NDArray[Any]]:
        """Columns of the county's first version, built in blocks to keep the peak low."""
        data: dict[str, npt.NDArray[Any]] = {}
        for lo in range(0, n, GENERATION_BLOCK):
            hi = min(n, lo + GENERATION_BLOCK)
            block = self._parcel_block(np.arange(lo, hi, dtype=np.int64),
                                       self._condo_slots(lo, hi, n), None)
            for name, values in block.items():
                if name not in data:
                    data[name] = np.empty(n, dtype=values.dtype)
                data[name][lo:hi] = values
        return data

    def _condo_slots(self, lo: int, hi: int, n: int) -> IntArray:
        """Footprint slots of rows lo..hi: a condo run of 1–3 units after a first unit
        reuses the first unit's slot (a unit's slot depends only on the 3 rows before it).
        """
        slots = np.arange(lo, hi, dtype=np.int64)
        before = np.arange(max(0, lo - 3), hi, dtype=np.int64)
        h = shapes.mix(before, self.seed)
        first = before[h % 300 == 1]
        run = 1 + (shapes.mix(first, self.seed) >> 9) % 3
        for step in (1, 2, 3):
            units = first + step
            ok = (step <= run) & (units >= lo) & (units < hi) & (units < n)
            slots[units[ok] - lo] = first[ok]
        return slots

    def _parcel_block(self, index: IntArray, slots: IntArray, clock: int | None
                      ) -> dict[str, npt.NDArray[Any]]:
        """Columns of the parcels `index` on `slots`; appended ones get `clock` dates."""
        n = len(index)
        h = shapes.mix(index, self.seed)
        slot_hash = shapes.mix(slots, self.seed + 1)
        kind = np.select([slot_hash % 5000 == 17, slot_hash % 2000 == 3,
                          slot_hash % 50 == 1, slot_hash % 33 == 5],
                         [shapes.NULL, shapes.BOWTIE, shapes.MULTIPART, shapes.COURTYARD],
                         shapes.PLAIN).astype(np.int8)
        if clock is not None or self.shape == "thin":
            kind[:] = shapes.PLAIN
        vertices = 4 + (slot_hash >> 7) % 9 if self.shape == "wide" else np.full(
            n, THIN_VERTICES)
        revs = np.zeros(n, dtype=np.int64)
        width, height = self.grid.parcel_size_m(slots, revs)
        district = self._district_of(slots)
        zone_of_district = shapes.mix(district, self.seed + 3) % len(ZONES)
        zoning = np.where(h % 100 < 85, zone_of_district, (h >> 12) % len(ZONES))
        deed = BASE_EDIT_MS - 300 * DAY_MS - (h >> 5) % (30 * 365 * DAY_MS)
        deed = np.where(h % 40 == 7, NULL_MS, deed) if clock is None else np.full(n, clock)
        edited = BASE_EDIT_MS + (h >> 3) % SPAN_EDIT_MS if clock is None else np.full(n, clock)
        return {
            "OBJECTID": index + 1,
            "PIN": 794_000_000 + index * 7 + (h % 7),
            "SLOT": slots,
            "REV": revs.astype(np.int16),
            "KIND": kind,
            "NVERT": vertices.astype(np.int8),
            "ZONING": zoning.astype(np.int8),
            "OWNER": ((h >> 16) % len(OWNER_LABELS)).astype(np.int16),
            "HOUSE": (100 + (h >> 20) % 9900).astype(np.int32),
            "STREET": ((h >> 24) % len(STREETS)).astype(np.int8),
            "CITY": ((h >> 28) % len(CITIES)).astype(np.int8),
            "ACRES": np.round(width * height / SQ_M_PER_ACRE, 4),
            "LAND_VAL": 20_000 + (h >> 30) % 2_000_000,
            "PARCEL_PK": 3_000_000_000 + index * 13,
            "DEED_DATE": deed,
            "REVAL_DATE": 1_704_067_200_000 - ((h >> 6) % 3) * 4 * 365 * DAY_MS,
            "LAST_EDITED_DATE": edited,
        }

    def _spare_slots(self, n: int) -> IntArray:
        """Slots for new parcels: new rows north of the grid, as a new subdivision."""
        start = int(self.parcels.data["SLOT"].max()) + 1
        first_row = -(-start // self.grid.cols) * self.grid.cols
        return np.arange(first_row, first_row + n, dtype=np.int64)

    def _district_of(self, slots: IntArray) -> IntArray:
        x, y = self.grid.origin_m(slots)
        step = self.grid.size_m / DISTRICTS_PER_SIDE
        half = self.grid.size_m / 2
        gx = np.clip(((x + half) // step).astype(np.int64), 0, DISTRICTS_PER_SIDE - 1)
        gy = np.clip(((y + half) // step).astype(np.int64), 0, DISTRICTS_PER_SIDE - 1)
        return gy * DISTRICTS_PER_SIDE + gx

    def _describe_parcels(self) -> None:
        layer = self.parcels
        v = layer.values
        pins = lambda rows: [f"{p:010d}" for p in v("PIN")()[rows].tolist()]  # noqa: E731
        columns = (
            NumberColumn(Field("OBJECTID", "esriFieldTypeOID", "OBJECTID"), v("OBJECTID")),
            TextColumn(Field("PIN", "esriFieldTypeString", "PIN", 10), pins,
                       lambda: layer.size),
            CategoryColumn(Field("ZONING", "esriFieldTypeString", "Zoning", 12), v("ZONING"),
                           [z[0] for z in ZONES]),
            CategoryColumn(Field("ZONE_DESC", "esriFieldTypeString", "Zoning description", 60),
                           v("ZONING"), [z[1] for z in ZONES]),
            CategoryColumn(Field("OWNER", "esriFieldTypeString", "Owner", 35), v("OWNER"),
                           OWNER_LABELS),
            TextColumn(Field("SITE_ADDRESS", "esriFieldTypeString", "Site address", 40),
                       self._addresses, lambda: layer.size),
            CategoryColumn(Field("CITY", "esriFieldTypeString", "City", 20), v("CITY"),
                           CITIES),
            NumberColumn(Field("ACRES", "esriFieldTypeDouble", "Acres"), v("ACRES")),
            NumberColumn(Field("LAND_VAL", "esriFieldTypeInteger", "Land value"),
                         v("LAND_VAL")),
            NumberColumn(Field("PARCEL_PK", "esriFieldTypeBigInteger", "Parcel key"),
                         v("PARCEL_PK")),
            NumberColumn(Field("DEED_DATE", "esriFieldTypeDate", "Deed date", 8),
                         v("DEED_DATE"), null=NULL_MS),
            DateOnlyColumn(Field("SALE_DATE", "esriFieldTypeDateOnly", "Sale date"),
                           v("DEED_DATE")),
            NumberColumn(Field("REVAL_DATE", "esriFieldTypeInteger", "Revaluation (ms)"),
                         v("REVAL_DATE")),
            NumberColumn(Field("LAST_EDITED_DATE", "esriFieldTypeDate", "Last edited", 8),
                         v("LAST_EDITED_DATE")),
        )
        layer.columns = {c.field.name: c for c in columns
                         if self.shape == "wide" or c.field.name in THIN_FIELDS}

    def _addresses(self, rows: IntArray) -> list[str]:
        data = self.parcels.data
        houses = data["HOUSE"][rows].tolist()
        streets = data["STREET"][rows].tolist()
        return [f"{h} {STREETS[s]}" + ("  " if h % 13 == 0 else "")
                for h, s in zip(houses, streets, strict=True)]

    def _district_data(self) -> dict[str, npt.NDArray[Any]]:
        n = DISTRICTS_PER_SIDE * DISTRICTS_PER_SIDE
        index = np.arange(n, dtype=np.int64)
        h = shapes.mix(index, self.seed + 5)
        return {
            "OBJECTID": index + 1,
            "ZONE_ID": index + 1,
            "ZONE_CODE": (shapes.mix(index, self.seed + 3) % len(ZONES)).astype(np.int8),
            "ORDINANCE": 2000 + (h >> 8) % 9000,
            "EFFECTIVE": BASE_EDIT_MS - (h >> 5) % (20 * 365 * DAY_MS),
            "LAST_EDITED_DATE": BASE_EDIT_MS + (h >> 3) % SPAN_EDIT_MS,
        }

    def _describe_districts(self) -> None:
        layer = self.districts
        v = layer.values
        size = lambda: layer.size  # noqa: E731
        ids = lambda rows: [f"ZD-{i:04d}" for i in v("ZONE_ID")()[rows].tolist()]  # noqa: E731
        ordinances = lambda rows: [  # noqa: E731
            f"TC-{o // 1000}-{o % 1000:03d}" for o in v("ORDINANCE")()[rows].tolist()]
        layer.columns = {c.field.name: c for c in (
            NumberColumn(Field("OBJECTID", "esriFieldTypeOID", "OBJECTID"), v("OBJECTID")),
            TextColumn(Field("ZONE_ID", "esriFieldTypeString", "District id", 8), ids, size),
            CategoryColumn(Field("ZONE_CODE", "esriFieldTypeString", "Zoning", 12),
                           v("ZONE_CODE"), [z[0] for z in ZONES]),
            CategoryColumn(Field("ZONE_DESC", "esriFieldTypeString", "Description", 60),
                           v("ZONE_CODE"), [z[1] for z in ZONES]),
            TextColumn(Field("ORDINANCE", "esriFieldTypeString", "Ordinance", 20),
                       ordinances, size),
            NumberColumn(Field("EFFECTIVE", "esriFieldTypeDate", "Effective", 8),
                         v("EFFECTIVE")),
            NumberColumn(Field("LAST_EDITED_DATE", "esriFieldTypeDate", "Last edited", 8),
                         v("LAST_EDITED_DATE")),
        )}

    # -- geometry --------------------------------------------------------------------

    def rings(self, layer: Layer, rows: IntArray, *, wgs84: bool = False
              ) -> list[shapes.Rings | None]:
        """Esri rings of the rows, in the layer CRS (or EPSG:4326 for GeoJSON)."""
        d = layer.data
        if layer is self.parcels:
            flat, lengths = shapes.parcel_rings_m(
                self.grid, d["SLOT"][rows], d["REV"][rows].astype(np.int64), d["KIND"][rows],
                d["NVERT"][rows].astype(np.int64))
        else:
            flat, lengths = shapes.district_rings_m(self.grid, DISTRICTS_PER_SIDE,
                                                    d["ZONE_ID"][rows] - 1)
        return shapes.assemble(flat, lengths, self.wgs84 if wgs84 else self.projector)

    def extent(self) -> dict[str, Any]:
        half = self.grid.size_m / 2 + self.grid.spacing_m
        lon, lat = shapes.to_lonlat(np.array([-half, half]), np.array([-half, half]))
        x, y = self.projector.project(lon, lat)
        return {"xmin": float(x[0]), "ymin": float(y[0]), "xmax": float(x[1]),
                "ymax": float(y[1]), "spatialReference": self.spatial_reference}

    # -- versions --------------------------------------------------------------------

    def publish(self, fraction: float = 0.01, seed: int = 1) -> dict[str, Any]:
        """A new version: ~fraction of parcels changed, ~fraction/10 deleted and added."""
        if not 0 < fraction <= 1:
            raise ValueError("fraction must be in (0, 1]")
        self.version += 1
        clock = PUBLISH_CLOCK_MS + self.version * DAY_MS
        rng = np.random.default_rng([self.seed, seed, self.version])
        layer = self.parcels
        d = layer.data
        live = np.nonzero(layer.live())[0]
        n_change = max(1, round(len(live) * fraction))
        n_churn = max(1, round(len(live) * fraction / 10))
        picked = rng.choice(live, size=min(len(live), n_change + n_churn), replace=False)
        changed, deleted = np.sort(picked[:n_change]), np.sort(picked[n_change:])
        what = rng.random(len(changed))
        rezoned, reshaped, sold = changed[what < 0.7], changed[(what >= 0.7) & (what < 0.85)], \
            changed[what >= 0.85]
        d["ZONING"][rezoned] = (d["ZONING"][rezoned] + rng.integers(
            1, len(ZONES), size=len(rezoned))) % len(ZONES)
        d["REV"][reshaped] += 1
        width, height = self.grid.parcel_size_m(d["SLOT"][reshaped],
                                                d["REV"][reshaped].astype(np.int64))
        d["ACRES"][reshaped] = np.round(width * height / SQ_M_PER_ACRE, 4)
        d["OWNER"][sold] = (d["OWNER"][sold] + rng.integers(
            1, len(OWNER_LABELS), size=len(sold))) % len(OWNER_LABELS)
        d["DEED_DATE"][sold] = clock
        d["LAST_EDITED_DATE"][changed] = clock
        layer.deleted[deleted] = True
        added = self._append_parcels(n_churn, clock)
        pins = self.parcels.columns["PIN"].serve
        return {
            "version": self.version, "edit_date": clock,
            "changed": len(changed), "rezoned": len(rezoned), "reshaped": len(reshaped),
            "sold": len(sold), "deleted": len(deleted), "added": len(added),
            "changed_pins": pins(changed), "deleted_pins": pins(deleted),
            "added_pins": pins(added),
        }

    def _append_parcels(self, n: int, clock: int) -> IntArray:
        layer = self.parcels
        start = layer.size
        extra = self._parcel_block(np.arange(start, start + n, dtype=np.int64),
                                   self._spare_slots(n), clock)
        extra["OBJECTID"] = int(layer.data["OBJECTID"].max()) + 1 + np.arange(n)
        for name, values in extra.items():
            layer.data[name] = np.concatenate([layer.data[name],
                                               values.astype(layer.data[name].dtype)])
        layer.deleted = np.concatenate([layer.deleted, np.zeros(n, dtype=bool)])
        return np.arange(start, start + n, dtype=np.int64)

    def republish(self) -> dict[str, Any]:
        """Same content, every object id renumbered, as after a truncate-and-append."""
        renumbered = 0
        for layer in self.layers:
            oids = layer.data["OBJECTID"]
            live = np.nonzero(layer.live())[0]
            oids[live] = int(oids.max()) + 1 + np.arange(len(live))
            renumbered += len(live)
        self.version += 1
        return {"version": self.version, "renumbered": renumbered}
