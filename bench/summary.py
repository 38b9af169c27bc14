"""Samples of the benchmark, their medians and ranges, the ratios and the table.

Every run is a `Sample`; nothing is dropped. A scenario's result is the median of
its repeats with the range beside it, and the tools' ratio is given both as the
ratio of the medians and as the range of the per-pair ratios (each pair ran one
after the other, so it shared one state of the machine).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

TOOLS = ("zoningsync", "ogr2ogr")
# "1% changed" is zoningsync's edit-date strategy; "1% extractChanges" the same
# publish read by change tracking. ogr2ogr has one way only: its full reload.
CHANGE_TRACKING = "1% extractChanges"
SCENARIOS = ("first load", "unchanged", "1% changed", CHANGE_TRACKING)
OGR2OGR_SCENARIO = {CHANGE_TRACKING: "1% changed"}
SERVER_SHARE_OF_CLIENT_LIMIT = 0.25
TARGETS = {"first load": 1.0, "unchanged": 0.2, "1% changed": 0.3, CHANGE_TRACKING: 0.3}
LARGE_RSS_RATIO_TARGET = 1.1
LARGE_RSS_MB_TARGET = 200.0
LOOP_LAG_P99_TARGET_MS = 50.0


@dataclass
class Sample:
    tool: str
    shape: str
    scenario: str
    repeat: int
    parcels: int
    wall_s: float
    client_cpu_s: float
    client_user_s: float
    client_sys_s: float
    postgres_cpu_s: float
    server_cpu_s: float
    others_cpu_s: float
    peak_rss_mb: float
    rows: int
    history_rows: int | None
    loop_lag_p99_ms: float | None
    portal_requests: int
    portal_cache_hits: int
    detail: str = ""

    @property
    def server_share(self) -> float:
        """The portal's CPU as a share of the wall time: near 1, the server binds."""
        return self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "server_share_of_wall": round(self.server_share, 4)}


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        return cls(statistics.median(ordered), ordered[0], ordered[-1])

    def text(self, digits: int = 2) -> str:
        if len({round(self.low, digits), round(self.high, digits)}) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"

    def as_json(self) -> dict[str, float]:
        return {"median": round(self.median, 4), "min": round(self.low, 4),
                "max": round(self.high, 4)}


def select(samples: list[Sample], **match: Any) -> list[Sample]:
    return [s for s in samples if all(getattr(s, k) == v for k, v in match.items())]


def spread(samples: list[Sample], value: Callable[[Sample], float]) -> Spread | None:
    return Spread.of(value(s) for s in samples) if samples else None


def ratio(samples: list[Sample], shape: str, scenario: str) -> dict[str, Any] | None:
    """zoningsync over ogr2ogr on one scenario: of the medians, and per pair; and the
    ratio of the CPU both spent (tool, PostgreSQL and portal), which a busy neighbour
    disturbs less than the wall time. A change-tracking re-sync is set against
    ogr2ogr's reload of the same publish, in the same repeat."""
    size = min(s.parcels for s in samples)
    ours = {s.repeat: s for s in select(samples, tool="zoningsync", shape=shape,
                                         scenario=scenario, parcels=size)}
    theirs = {s.repeat: s for s in select(samples, tool="ogr2ogr", shape=shape,
                                           scenario=OGR2OGR_SCENARIO.get(scenario, scenario),
                                           parcels=size)}
    pairs = [ours[r].wall_s / theirs[r].wall_s for r in sorted(ours.keys() & theirs.keys())]
    if not pairs:
        return None
    of_medians = (statistics.median(s.wall_s for s in ours.values())
                  / statistics.median(s.wall_s for s in theirs.values()))
    cpu = (statistics.median(_cpu(s) for s in ours.values())
           / statistics.median(_cpu(s) for s in theirs.values()))
    return {"of_medians": round(of_medians, 4), "pairs": Spread.of(pairs).as_json(),
            "cpu_of_medians": round(cpu, 4), "target": TARGETS[scenario]}


def _cpu(sample: Sample) -> float:
    return sample.client_cpu_s + sample.postgres_cpu_s + sample.server_cpu_s


def aggregate(samples: list[Sample]) -> list[dict[str, Any]]:
    """One row per shape, scenario and tool (and size): medians and ranges."""
    rows = []
    shapes = list(dict.fromkeys(s.shape for s in samples))
    keys = sorted({(shapes.index(s.shape), s.parcels, SCENARIOS.index(s.scenario),
                    TOOLS.index(s.tool)) for s in samples})
    for shape_index, parcels, scenario, tool in keys:
        shape = shapes[shape_index]
        group = select(samples, shape=shape, parcels=parcels, scenario=SCENARIOS[scenario],
                       tool=TOOLS[tool])
        row: dict[str, Any] = {"shape": shape, "parcels": parcels,
                               "scenario": SCENARIOS[scenario], "tool": TOOLS[tool],
                               "runs": len(group)}
        for name, value in (("wall_s", lambda s: s.wall_s),
                            ("client_cpu_s", lambda s: s.client_cpu_s),
                            ("postgres_cpu_s", lambda s: s.postgres_cpu_s),
                            ("server_cpu_s", lambda s: s.server_cpu_s),
                            ("server_share_of_wall", lambda s: s.server_share),
                            ("others_cpu_s", lambda s: s.others_cpu_s),
                            ("peak_rss_mb", lambda s: s.peak_rss_mb),
                            ("rows", lambda s: float(s.rows)),
                            ("requests", lambda s: float(s.portal_requests))):
            row[name] = spread(group, value)
        lags = [s.loop_lag_p99_ms for s in group if s.loop_lag_p99_ms is not None]
        row["loop_lag_p99_ms"] = Spread.of(lags) if lags else None
        rows.append(row)
    return rows


def server_warnings(samples: list[Sample]) -> list[str]:
    """Runs where the portal's CPU was not well below the client's: there the server
    may have been the bottleneck, and the tool's time says little about the tool."""
    return [f"{s.tool} {s.shape} {s.scenario} #{s.repeat}: portal CPU {s.server_cpu_s:.2f} s"
            f" vs client {s.client_cpu_s:.2f} s ({s.server_share:.0%} of the wall time)"
            for s in samples
            if s.server_cpu_s > SERVER_SHARE_OF_CLIENT_LIMIT * s.client_cpu_s]


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'shape':5} {'parcels':>7} {'scenario':17} {'tool':10} {'wall s':>17} "
              f"{'client cpu':>17} {'pg cpu':>17} {'server cpu':>11} {'srv/wall':>8} "
              f"{'others':>7} {'RSS MB':>7} {'rows':>7} {'requests':>8} {'lag p99':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        lag = row["loop_lag_p99_ms"]
        print(f"{row['shape']:5} {row['parcels']:>7} {row['scenario']:17} {row['tool']:10} "
              f"{row['wall_s'].text():>17} {row['client_cpu_s'].text():>17} "
              f"{row['postgres_cpu_s'].text():>17} {row['server_cpu_s'].median:>11.2f} "
              f"{row['server_share_of_wall'].median:>8.0%} {row['others_cpu_s'].median:>7.1f} "
              f"{row['peak_rss_mb'].median:>7.0f} {row['rows'].median:>7.0f} "
              f"{row['requests'].median:>8.0f} "
              f"{'' if lag is None else f'{lag.median:.0f}ms':>7}")


def jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v.as_json() if isinstance(v, Spread) else v for k, v in row.items()}
            for row in rows]
