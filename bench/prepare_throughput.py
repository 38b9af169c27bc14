"""Throughput of the geometry stage: `prepare_page` on pages of realistic parcels.

Builds pages of 2000 parcels in EPSG:2264 (NC state plane, US feet) as an ArcGIS
server sends them: 6 to 40 vertices per ring, outer rings clockwise, 5% with a
counter-clockwise hole, 2% in two parts, a dozen attributes each. Times
`prepare_page` on one core (one thread) and reports features per second; the
stage's target is 20,000 features/s on one core.

    python bench/prepare_throughput.py [--pages 10] [--page-size 2000] [--seed 1]

Prints a table and writes bench/results/prepare_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from zoningsync.prepare import prepare_page
from zoningsync.records import CrsSpec, Page, SourceRecord

RESULTS = Path(__file__).resolve().parent / "results" / "prepare_throughput.json"
NC_STATE_PLANE_FEET = CrsSpec(wkid=102719, latest_wkid=2264)
H3_RESOLUTION = 9


def ring(rng: np.random.Generator, cx: float, cy: float, radius: float, clockwise: bool
         ) -> list[list[float]]:
    """A closed star-shaped ring around (cx, cy), 6 to 40 vertices, Esri orientation."""
    n = int(rng.integers(6, 41))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.7, 1.0, n)
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    points = np.round(np.column_stack([xs, ys]), 3)
    if clockwise:
        points = points[::-1]
    return [*points.tolist(), points[0].tolist()]


def parcel(rng: np.random.Generator, index: int) -> SourceRecord:
    cx, cy = rng.uniform(2_050_000, 2_150_000), rng.uniform(700_000, 780_000)
    radius = float(rng.uniform(40, 300))
    roll = rng.uniform()
    rings = [ring(rng, cx, cy, radius, clockwise=True)]
    if roll < 0.05:
        rings.append(ring(rng, cx, cy, radius * 0.3, clockwise=False))
    elif roll < 0.07:
        rings.append(ring(rng, cx + 3 * radius, cy, radius * 0.8, clockwise=True))
    attributes: dict[str, Any] = {
        "OBJECTID": index, "PIN_NUM": f"{1700000000 + index}", "OWNER": f"OWNER {index % 977}",
        "ADDR1": f"{index % 9000} MAIN ST", "CITY": "RALEIGH", "ZIP": "27601",
        "ACRES": round(radius * radius * 3.1 / 43560, 4), "LAND_VAL": index * 13 % 500000,
        "BLDG_VAL": index * 7 % 900000, "YEAR_BUILT": 1900 + index % 120,
        "DEED_DATE": "2019-05-01T00:00:00Z", "ZONING": None,
    }
    geometry = {"rings": rings}
    return SourceRecord(oid=index, source_key=attributes["PIN_NUM"],
                        fields={"parcel_id": attributes["PIN_NUM"], "zoning_code": "R-4",
                                "zoning_desc": None},
                        attrs=attributes, geometry=geometry,
                        raw={"attributes": attributes, "geometry": geometry})


def make_page(rng: np.random.Generator, number: int, size: int) -> Page:
    records = [parcel(rng, number * size + i) for i in range(size)]
    return Page(f"page-{number}", records, NC_STATE_PLANE_FEET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pages = [make_page(rng, n, args.page_size) for n in range(args.pages)]
    prepare_page(pages[0], h3_resolution=H3_RESOLUTION)  # warm the CRS and transformer caches
    timings, stored, rejected, repaired = [], 0, 0, 0
    for page in pages:
        start = time.perf_counter()
        prepared = prepare_page(page, h3_resolution=H3_RESOLUTION)
        timings.append(time.perf_counter() - start)
        stored += len(prepared.rows)
        rejected += len(prepared.rejected)
        repaired += prepared.repaired
    features = args.pages * args.page_size
    per_page = statistics.median(timings)
    result = {
        "pages": args.pages, "page_size": args.page_size, "features": features,
        "stored": stored, "rejected": rejected, "repaired": repaired,
        "median_page_seconds": round(per_page, 4),
        "features_per_second_median_page": round(args.page_size / per_page),
        "features_per_second_overall": round(features / sum(timings)),
        "python": platform.python_version(), "shapely": shapely.__version__,
        "geos": shapely.geos_version_string, "machine": platform.machine(),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
