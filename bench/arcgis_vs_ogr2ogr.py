"""zoningsync against GDAL's ogr2ogr: one ArcGIS layer into one PostGIS.

Generates a county of N parcels, serves it from the simulated portal in its own
process, and measures for both tools, against the same server and the same
PostGIS: the first load, a re-sync of unchanged data and a re-sync after 1% of
the county changed. ogr2ogr has no incremental mode, so each of its syncs is a
full reload (`-overwrite`, `PG_USE_COPY=YES`, GDAL paging the layer itself).
Times include process start. Peak RSS is the child's (wait4). zoningsync runs
with a generous rate limit here (ogr2ogr has none); politeness is tested apart.

The first loads are repeated (each tool in turn, each time into a fresh
database) and the median counts. Then zoningsync loads a 4x larger county to
show that its peak RSS stays flat.

    python bench/arcgis_vs_ogr2ogr.py [--parcels 100000] [--large 400000] [--repeat 3]

Prints a table and writes bench/results/arcgis_vs_ogr2ogr.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LAYER_PATH = "/arcgis/rest/services/Wake/FeatureServer/0"
QUERY = "/query?where=1%3D1&outFields=*&orderByFields=OBJECTID+ASC&f=json"

SOURCE = """
[jurisdiction]
id = "bench-county"
name = "Benchmark County"

[[feeds]]
id = "parcels"
kind = "parcels"
type = "arcgis"
url = "{url}"
key = "PIN"
rate_limit = {{ requests_per_second = 1000, burst = 1000 }}
page_size = 2000
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
zoning_desc = "ZONE_DESC"
"""


@dataclass
class Measure:
    tool: str
    scenario: str
    parcels: int
    seconds: float
    peak_rss_mb: float
    rows_written: int
    history_rows: int | None = None
    loop_lag_p99_ms: float | None = None
    detail: str = ""


def ensure_ogr2ogr() -> str:
    found = shutil.which("ogr2ogr")
    if found:
        return found
    runner = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("bench: installing gdal-bin for ogr2ogr", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*runner, "apt-get", "update", "-q"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*runner, "apt-get", "install", "-y", "-q", "gdal-bin"], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("ogr2ogr")
    if not found:
        sys.exit("bench: ogr2ogr still missing after installing gdal-bin")
    return found


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a command; return wall seconds, its peak RSS in MB, and its stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"bench: {' '.join(argv[:3])} failed:\n{err.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


class Portal:
    """The simulated county portal in a process of its own."""

    def __init__(self, parcels: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoningsync.portal", "--host", "127.0.0.1", "--port", "0",
             "--parcels", str(parcels), "--seed", "7"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            sys.exit("bench: the portal did not start")
        self.layer_url = self.base_url + LAYER_PATH

    def publish(self, fraction: float) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base_url + "/_portal/publish", method="POST",
            data=json.dumps({"fraction": fraction, "seed": 11}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def libpq_params(url: str) -> dict[str, str]:
    """host/port/user/dbname of the cluster URL, for GDAL's PG: connection string."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return {
        "host": query.get("host", parts.hostname or ""),
        "port": query.get("port", str(parts.port or 5432)),
        "user": parts.username or "",
        "dbname": parts.path.lstrip("/"),
    }


def ogr2ogr_load(ogr2ogr: str, db_url: str, portal: Portal, parcels: int, scenario: str
                 ) -> Measure:
    params = libpq_params(db_url)
    pg = "PG:" + " ".join(f"{k}={v}" for k, v in params.items())
    env = {**os.environ, "PG_USE_COPY": "YES"}
    argv = [ogr2ogr, "-f", "PostgreSQL", pg, "ESRIJSON:" + portal.layer_url + QUERY,
            "-nln", "public.ogr_parcels", "-overwrite", "-lco", "GEOMETRY_NAME=geom",
            "-lco", "SPATIAL_INDEX=GIST", "-nlt", "PROMOTE_TO_MULTI",
            "--config", "PG_USE_COPY", "YES"]
    seconds, rss, _ = run_measured(argv, env)
    rows = asyncio.run(count_rows(db_url, "SELECT count(*) FROM public.ogr_parcels"))
    return Measure("ogr2ogr", scenario, parcels, seconds, rss, rows)


def zoningsync_sync(db_url: str, sources: Path, parcels: int, scenario: str) -> Measure:
    argv = [str(VENV_BIN / "zoningsync"), "--database-url", db_url, "--log-level", "warning",
            "sync", "bench-county/parcels", "--sources", str(sources), "--json"]
    seconds, rss, out = run_measured(argv)
    summary = json.loads(out)[0]
    history = asyncio.run(count_rows(
        db_url, f"SELECT count(*) FROM zoningsync.feature_history WHERE run_id = {summary['id']}"))
    written = summary["inserted"] + summary["updated"] + summary["retired"]
    return Measure(
        "zoningsync", scenario, parcels, seconds, rss, written, history,
        summary.get("loop_lag_p99_ms"),
        detail=(f"mode={summary['mode']} fetched={summary['fetched']} "
                f"quarantined={summary['quarantined']} chunks {summary['chunks_written']}/"
                f"{summary['chunks_total']} requests={summary['requests']}"),
    )


async def count_rows(db_url: str, sql: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def fresh_database(cluster_url: str, name: str) -> str:
    conn = await asyncpg.connect(cluster_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, query = cluster_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


def migrated_database(cluster_url: str, name: str) -> str:
    db_url = asyncio.run(fresh_database(cluster_url, name))
    subprocess.run([str(VENV_BIN / "zoningsync"), "--database-url", db_url, "migrate"],
                   check=True, stdout=subprocess.DEVNULL)
    return db_url


def median_of(samples: list[Measure]) -> Measure:
    """The median run of a scenario repeated: one run on a shared 2-core box varies by 10%."""
    ordered = sorted(samples, key=lambda m: m.seconds)
    median = ordered[len(ordered) // 2]
    if len(samples) > 1:
        times = ", ".join(f"{m.seconds:.2f}" for m in samples)
        median.detail = f"{median.detail} median of {len(samples)} ({times} s)".strip()
    return median


def note(measure: Measure) -> Measure:
    """Say each result as it comes: a long benchmark should not be silent."""
    print(f"bench: {measure.tool} {measure.scenario} ({measure.parcels}): "
          f"{measure.seconds:.2f} s, {measure.peak_rss_mb:.0f} MB, {measure.rows_written} rows",
          file=sys.stderr)
    return measure


def print_table(measures: list[Measure]) -> None:
    header = (f"{'tool':10} {'scenario':12} {'parcels':>8} {'seconds':>8} {'RSS MB':>7} "
              f"{'rows':>8} {'history':>8} {'lag p99':>8}  detail")
    print(header)
    print("-" * len(header))
    for m in measures:
        history = "" if m.history_rows is None else str(m.history_rows)
        lag = "" if m.loop_lag_p99_ms is None else f"{m.loop_lag_p99_ms:.1f}ms"
        print(f"{m.tool:10} {m.scenario:12} {m.parcels:>8} {m.seconds:>8.2f} "
              f"{m.peak_rss_mb:>7.1f} {m.rows_written:>8} {history:>8} {lag:>8}  {m.detail}")


def ratio(measures: list[Measure], scenario: str) -> float:
    ours = next(m for m in measures if m.tool == "zoningsync" and m.scenario == scenario)
    theirs = next(m for m in measures if m.tool == "ogr2ogr" and m.scenario == scenario)
    return ours.seconds / theirs.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=400_000,
                        help="parcels of the RSS flatness run (0 to skip)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="first loads per tool, each into a fresh database; the median "
                             "counts")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "arcgis_vs_ogr2ogr.json")
    args = parser.parse_args()

    from zoningsync.pgcluster import EmbeddedCluster

    ogr2ogr = ensure_ogr2ogr()
    state = Path(tempfile.mkdtemp(prefix="zs-bench-", dir="/tmp"))
    state.chmod(0o755)
    cluster = EmbeddedCluster(state, settings={"synchronous_commit": "off"})
    sources = state / "sources"
    sources.mkdir()
    measures: list[Measure] = []
    try:
        cluster_url = asyncio.run(cluster.start())
        admin_url = cluster.url("postgres")
        portal = Portal(args.parcels)
        try:
            (sources / "bench.toml").write_text(SOURCE.format(url=portal.layer_url))
            ours: list[Measure] = []
            theirs: list[Measure] = []
            for _ in range(args.repeat):  # the last database stays for the re-syncs
                db_url = migrated_database(admin_url, "bench")
                ours.append(note(zoningsync_sync(db_url, sources, args.parcels, "first load")))
                theirs.append(note(ogr2ogr_load(ogr2ogr, db_url, portal, args.parcels,
                                                "first load")))
            measures += [median_of(ours), median_of(theirs)]
            measures.append(note(zoningsync_sync(db_url, sources, args.parcels, "unchanged")))
            measures.append(note(ogr2ogr_load(ogr2ogr, db_url, portal, args.parcels,
                                              "unchanged")))
            published = portal.publish(0.01)
            print(f"bench: published a 1% change: "
                  f"{ {k: v for k, v in published.items() if isinstance(v, int)} }",
                  file=sys.stderr)
            measures.append(note(zoningsync_sync(db_url, sources, args.parcels, "1% changed")))
            measures.append(note(ogr2ogr_load(ogr2ogr, db_url, portal, args.parcels, "1% changed")))
        finally:
            portal.stop()
        if args.large:
            large_db = migrated_database(admin_url, "bench_large")
            portal = Portal(args.large)
            try:
                (sources / "bench.toml").write_text(SOURCE.format(url=portal.layer_url))
                measures.append(note(zoningsync_sync(large_db, sources, args.large, "first load")))
            finally:
                portal.stop()
        del cluster_url
    finally:
        asyncio.run(cluster.stop())
        shutil.rmtree(state, ignore_errors=True)

    print_table(measures)
    targets = {
        "first load / ogr2ogr (target <= 1.0)": ratio(measures, "first load"),
        "unchanged / ogr2ogr (target <= 0.20)": ratio(measures, "unchanged"),
        "1% changed / ogr2ogr (target <= 0.35)": ratio(measures, "1% changed"),
    }
    small = next(m for m in measures if m.tool == "zoningsync" and m.scenario == "first load")
    if args.large:
        large = next(m for m in measures if m.parcels == args.large)
        targets["peak RSS large / small (target <= 1.25)"] = large.peak_rss_mb / small.peak_rss_mb
    print()
    for name, value in targets.items():
        print(f"{name}: {value:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "parcels": args.parcels,
        "first_load_repeats": args.repeat,
        "measures": [asdict(m) for m in measures],
        "ratios": targets,
    }, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
