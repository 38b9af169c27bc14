"""zoningsync against GDAL's ogr2ogr: one ArcGIS layer into one PostGIS, told truly.

Serves a simulated county from the portal in its own process, in two layer shapes
(`wide`: 14 fields, 5-13 vertices; `thin`: 8 fields, one 5-vertex ring), and runs
both tools against the same server and the same PostGIS, interleaved (zoningsync,
ogr2ogr, zoningsync, ogr2ogr ...), `--repeat` times each: the first load into a
fresh database, a re-sync of unchanged data, and a re-sync after 1% of the county
changed, which zoningsync reads twice: by edit date (`1% changed`) and by change
tracking (`1% extractChanges`, on a copy of the database taken before the publish).
ogr2ogr has no incremental mode, so each of its syncs is a full reload
(`-overwrite`, `PG_USE_COPY=YES`, GDAL paging the layer itself). Times include
process start. zoningsync runs with a generous rate limit (ogr2ogr has none);
politeness is tested apart.

Every run records its wall time, the CPU of the tool (rusage of the child, from
wait4), of PostgreSQL (postmaster and backends, from /proc), of the portal and of
everything else on the machine, the tool's peak RSS and, for zoningsync, the
event-loop lag p99 of its summary. The portal keeps its answers per publish
(zoningsync.portal.answers) and a warm-up pass of both tools fills that cache, so
a page costs the server what a static server would pay; the bench warns of any run
where the portal's CPU was not well below the client's. Then zoningsync loads a
larger county of each shape, to show whether its peak RSS stays flat.

    python bench/arcgis_vs_ogr2ogr.py [--parcels 100000] [--large 400000] [--repeat 3]
                                      [--shapes wide,thin]

Prints a table and writes bench/results/arcgis_vs_ogr2ogr-<UTC time>.json with the
date, the machine, the versions of both tools and every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from procstat import CpuMeter, Reading, postmaster_pid
from summary import (
    CHANGE_TRACKING,
    LARGE_RSS_MB_TARGET,
    LARGE_RSS_RATIO_TARGET,
    LOOP_LAG_P99_TARGET_MS,
    SCENARIOS,
    Sample,
    aggregate,
    jsonable,
    print_table,
    ratio,
    select,
    server_warnings,
)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LAYER_PATH = "/arcgis/rest/services/Wake/FeatureServer/0"
QUERY = "/query?where=1%3D1&outFields=*&orderByFields=OBJECTID+ASC&f=json"
SHAPES = ("wide", "thin")
# zoningsync's incremental strategies, one source directory each; the feed's
# row-shaping fingerprint does not include it, so either reads the other's state.
EDIT_DATE, CHANGES = "edit_date", "changes"

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
incremental = "{incremental}"
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
zoning_desc = "ZONE_DESC"
"""


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


@dataclass
class Child:
    """One finished run of a tool: wall time, its rusage and what it printed."""

    wall_s: float
    usage: Any
    stdout: str


def run_child(argv: list[str], env: dict[str, str] | None = None) -> Child:
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"bench: {' '.join(argv[:3])} failed:\n{err.read().decode()[-3000:]}")
        return Child(wall, usage, out.read().decode())


class Portal:
    """The simulated county portal in a process of its own, with its answer cache.

    Its layer tracks changes from the start (a behaviour is part of every cache
    key, so it is never switched during a run): the edit-date feed and ogr2ogr
    never ask the service root, so they read it as a layer without tracking.
    """

    def __init__(self, parcels: int, shape: str) -> None:
        self.shape = shape
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoningsync.portal", "--host", "127.0.0.1", "--port", "0",
             "--parcels", str(parcels), "--seed", "7", "--shape", shape],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            sys.exit("bench: the portal did not start")
        self.layer_url = self.base_url + LAYER_PATH
        self._call("/_portal/behaviour", {"change_tracking": True})

    def _call(self, route: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.base_url + route, method="GET" if body is None else "POST",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=1800) as answer:
            return json.loads(answer.read())

    def publish(self, fraction: float, seed: int) -> dict[str, Any]:
        """A new version; the portal re-encodes the answers it held before it answers."""
        return dict(self._call("/_portal/publish",
                               {"fraction": fraction, "seed": seed, "warm": True}))

    def counters(self) -> tuple[int, int]:
        """Requests served and answers served from the cache, so far."""
        requests = sum(self._call("/_portal/stats")["requests"].values())
        answers = self._call("/_portal/answers")
        return requests, 0 if answers is None else int(answers["hits"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def libpq_params(url: str) -> dict[str, str]:
    """host/port/user/dbname of the cluster URL, for GDAL's PG: connection string."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return {
        "host": query.get("host", parts.hostname or ""),
        "port": query.get("port", str(parts.port or 5432)),
        "user": parts.username or "",
        "dbname": parts.path.lstrip("/"),
    }


async def fetch_value(db_url: str, sql: str) -> Any:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def fresh_database(cluster_url: str, name: str, template: str | None = None) -> str:
    """A new database `name` (a copy of `template`, when given) and its URL."""
    conn = await asyncpg.connect(cluster_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        copy = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await conn.close()
    base, _, query = cluster_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


class Bench:
    """One cluster, one portal at a time, both tools, and every sample taken."""

    def __init__(self, admin_url: str, data_dir: Path, sources: Path, ogr2ogr: str) -> None:
        self.admin_url = admin_url
        self.postmaster = postmaster_pid(data_dir)
        self.sources = sources
        self.ogr2ogr = ogr2ogr
        self.samples: list[Sample] = []
        self.portal: Portal | None = None
        self.parcels = 0

    def serve(self, parcels: int, shape: str) -> Portal:
        if self.portal is not None:
            self.portal.stop()
        print(f"bench: serving {parcels} {shape} parcels", file=sys.stderr)
        self.portal = Portal(parcels, shape)
        self.parcels = parcels
        for strategy in (EDIT_DATE, CHANGES):
            directory = self.sources / strategy
            directory.mkdir(exist_ok=True)
            (directory / "bench.toml").write_text(
                SOURCE.format(url=self.portal.layer_url, incremental=strategy))
        return self.portal

    def stop(self) -> None:
        if self.portal is not None:
            self.portal.stop()
            self.portal = None

    def migrated_database(self, name: str = "bench") -> str:
        db_url = asyncio.run(fresh_database(self.admin_url, name))
        subprocess.run([str(VENV_BIN / "zoningsync"), "--database-url", db_url, "migrate"],
                       check=True, stdout=subprocess.DEVNULL)
        return db_url

    def _measured(self, tool: str, scenario: str, repeat: int, argv: list[str],
                  env: dict[str, str] | None = None) -> tuple[Child, Sample]:
        """Run one tool and split the CPU of the run between it, PostgreSQL, the
        portal and the rest of the machine."""
        assert self.portal is not None
        meter = CpuMeter(self.postmaster, self.portal.proc.pid)
        requests, hits = self.portal.counters()
        before = meter.read()
        child = run_child(argv, env)
        after = meter.settled(before)
        requests_after, hits_after = self.portal.counters()
        client_user, client_sys = child.usage.ru_utime, child.usage.ru_stime
        sample = Sample(
            tool=tool, shape=self.portal.shape, scenario=scenario, repeat=repeat,
            parcels=self.parcels, wall_s=round(child.wall_s, 4),
            client_cpu_s=round(client_user + client_sys, 3),
            client_user_s=round(client_user, 3), client_sys_s=round(client_sys, 3),
            postgres_cpu_s=round(after.postgres_s - before.postgres_s, 3),
            server_cpu_s=round(after.server_s - before.server_s, 3),
            others_cpu_s=round(_others(before, after, client_user + client_sys), 3),
            peak_rss_mb=round(child.usage.ru_maxrss / 1024, 1), rows=0, history_rows=None,
            loop_lag_p99_ms=None, portal_requests=requests_after - requests,
            portal_cache_hits=hits_after - hits)
        return child, sample

    def ogr2ogr_load(self, db_url: str, scenario: str, repeat: int) -> Sample:
        assert self.portal is not None
        pg = "PG:" + " ".join(f"{k}={v}" for k, v in libpq_params(db_url).items())
        argv = [self.ogr2ogr, "-f", "PostgreSQL", pg,
                "ESRIJSON:" + self.portal.layer_url + QUERY,
                "-nln", "public.ogr_parcels", "-overwrite", "-lco", "GEOMETRY_NAME=geom",
                "-lco", "SPATIAL_INDEX=GIST", "-nlt", "PROMOTE_TO_MULTI",
                "--config", "PG_USE_COPY", "YES"]
        _, sample = self._measured("ogr2ogr", scenario, repeat, argv,
                                   {**os.environ, "PG_USE_COPY": "YES"})
        sample.rows = int(asyncio.run(fetch_value(
            db_url, "SELECT count(*) FROM public.ogr_parcels")))
        return self._kept(sample)

    def zoningsync_sync(self, db_url: str, scenario: str, repeat: int,
                        strategy: str = EDIT_DATE) -> Sample:
        argv = [str(VENV_BIN / "zoningsync"), "--database-url", db_url,
                "--log-level", "warning", "sync", "bench-county/parcels",
                "--sources", str(self.sources / strategy), "--json"]
        child, sample = self._measured("zoningsync", scenario, repeat, argv)
        summary = json.loads(child.stdout)[0]
        sample.history_rows = int(asyncio.run(fetch_value(
            db_url, "SELECT count(*) FROM zoningsync.feature_history"
                    f" WHERE run_id = {int(summary['id'])}")))
        sample.rows = summary["inserted"] + summary["updated"] + summary["retired"]
        sample.loop_lag_p99_ms = summary.get("loop_lag_p99_ms")
        sample.detail = (f"{strategy} mode={summary['mode']} fetched={summary['fetched']} "
                         f"quarantined={summary['quarantined']} chunks "
                         f"{summary['chunks_written']}/{summary['chunks_total']} "
                         f"requests={summary['requests']}")
        if scenario == "unchanged" and (sample.rows or sample.history_rows):
            print(f"bench: WARNING an unchanged re-sync wrote {sample.rows} rows and "
                  f"{sample.history_rows} history rows", file=sys.stderr)
        return self._kept(sample)

    def _kept(self, sample: Sample) -> Sample:
        if sample.repeat >= 0:
            self.samples.append(sample)
        print(f"bench: {sample.tool} {sample.shape} {sample.scenario} #{sample.repeat} "
              f"({sample.parcels}): {sample.wall_s:.2f} s, client {sample.client_cpu_s:.2f}"
              f" pg {sample.postgres_cpu_s:.2f} portal {sample.server_cpu_s:.2f} others "
              f"{sample.others_cpu_s:.2f} cpu s, {sample.peak_rss_mb:.0f} MB, "
              f"{sample.rows} rows, {sample.portal_cache_hits}/{sample.portal_requests} "
              "answers cached", file=sys.stderr)
        return sample

    def warm_up(self) -> None:
        """Both tools once, unrecorded, so the portal holds every answer they ask for
        (repeat -1 is not kept): later runs meet a server that only sends bytes."""
        db_url = self.migrated_database()
        self.zoningsync_sync(db_url, "first load", -1)
        self.ogr2ogr_load(db_url, "first load", -1)
        self.zoningsync_sync(db_url, "unchanged", -1)

    def interleaved(self, repeat: int) -> None:
        """One repeat of every scenario, the tools taking turns.

        The change-tracking re-sync starts from the same state as the edit-date
        one: a copy of the database after the unchanged re-sync, which one
        unmeasured full read with change tracking brings to the layer's server
        generation (a feed stores one only from a read that saw it).
        """
        assert self.portal is not None
        db_url = self.migrated_database()
        self.zoningsync_sync(db_url, "first load", repeat)
        self.ogr2ogr_load(db_url, "first load", repeat)
        self.zoningsync_sync(db_url, "unchanged", repeat)
        self.ogr2ogr_load(db_url, "unchanged", repeat)
        tracked_url = asyncio.run(fresh_database(self.admin_url, "bench_changes", "bench"))
        self.zoningsync_sync(tracked_url, "unchanged", -1, CHANGES)
        published = self.portal.publish(0.01, seed=11 + repeat)
        print(f"bench: published a 1% change: "
              f"{ {k: v for k, v in published.items() if isinstance(v, int)} }",
              file=sys.stderr)
        self.zoningsync_sync(db_url, "1% changed", repeat)
        self.ogr2ogr_load(db_url, "1% changed", repeat)
        self.zoningsync_sync(tracked_url, CHANGE_TRACKING, repeat, CHANGES)

    def large_load(self) -> None:
        db_url = self.migrated_database("bench_large")
        self.zoningsync_sync(db_url, "first load", 0)


def _others(before: Reading, after: Reading, client_s: float) -> float:
    """CPU the rest of the machine burnt during the run (neighbours, the bench itself)."""
    ours = client_s + (after.postgres_s - before.postgres_s) + (after.server_s - before.server_s)
    return max(0.0, after.machine_s - before.machine_s - ours)


def machine() -> dict[str, Any]:
    """What the numbers were taken on, and how busy it was when they were."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    meminfo = Path("/proc/meminfo").read_text().split()
    memory_kb = int(meminfo[meminfo.index("MemTotal:") + 1])
    return {"nproc": len(os.sched_getaffinity(0)), "cpus": os.cpu_count(), "cpu_model": model,
            "memory_mb": memory_kb // 1024, "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_at_start": os.getloadavg()}


def versions(ogr2ogr: str, db_url: str) -> dict[str, Any]:
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip()
    gdal = subprocess.run([ogr2ogr, "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()
    postgres = asyncio.run(fetch_value(db_url, "SHOW server_version"))
    postgis = asyncio.run(fetch_value(db_url, "SELECT default_version FROM"
                                              " pg_available_extensions WHERE name = 'postgis'"))
    return {"zoningsync": metadata.version("zoningsync"), "zoningsync_commit": commit,
            "ogr2ogr": gdal, "postgresql": postgres, "postgis": postgis}


def report(samples: list[Sample], shapes: list[str], large: int) -> dict[str, Any]:
    """Print the table, ratios, targets and warnings; the same as JSON."""
    rows = aggregate(samples)
    print_table(rows)
    ratios: dict[str, Any] = {}
    checks: dict[str, dict[str, Any]] = {}
    print()
    for shape in shapes:
        for scenario in SCENARIOS:
            found = ratio(samples, shape, scenario)
            if found is None:
                continue
            ratios[f"{shape} {scenario}"] = found
            pairs = found["pairs"]
            print(f"{shape} {scenario}: zoningsync / ogr2ogr {found['of_medians']:.3f} "
                  f"(pairs {pairs['min']:.3f}-{pairs['max']:.3f}; target <= "
                  f"{found['target']}); CPU {found['cpu_of_medians']:.3f}")
            checks[f"{shape} {scenario} ratio"] = {
                "value": found["of_medians"], "target": found["target"],
                "met": found["of_medians"] <= found["target"]}
        small = select(samples, tool="zoningsync", shape=shape, scenario="first load",
                       parcels=min(s.parcels for s in samples))
        lags = [s.loop_lag_p99_ms for s in small if s.loop_lag_p99_ms is not None]
        if lags:
            lag = statistics.median(lags)
            checks[f"{shape} first load loop lag p99 ms (median)"] = {
                "value": lag, "target": LOOP_LAG_P99_TARGET_MS,
                "met": lag <= LOOP_LAG_P99_TARGET_MS}
        big = select(samples, tool="zoningsync", shape=shape, parcels=large)
        if large and big and small:
            rss = max(s.peak_rss_mb for s in small)
            checks[f"{shape} peak RSS {large} / {small[0].parcels}"] = {
                "value": round(big[0].peak_rss_mb / rss, 3), "target": LARGE_RSS_RATIO_TARGET,
                "met": big[0].peak_rss_mb / rss <= LARGE_RSS_RATIO_TARGET}
            checks[f"{shape} peak RSS MB at {large}"] = {
                "value": big[0].peak_rss_mb, "target": LARGE_RSS_MB_TARGET,
                "met": big[0].peak_rss_mb <= LARGE_RSS_MB_TARGET}
    print()
    for name, check in checks.items():
        print(f"{'met ' if check['met'] else 'MISS'} {name}: {check['value']} "
              f"(target <= {check['target']})")
    warnings = server_warnings(samples)
    for warning in warnings:
        print(f"WARNING the portal may have bound this run: {warning}")
    if not warnings:
        print("the portal's CPU stayed well below the client's in every run")
    return {"summary": jsonable(rows), "ratios": ratios, "targets": checks,
            "server_warnings": warnings}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=400_000,
                        help="parcels of zoningsync's RSS flatness run, per shape (0: skip)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every scenario per tool and shape, interleaved")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="layer shapes to run, comma-separated: wide, thin")
    parser.add_argument("--out", type=Path, help="the JSON file (default: bench/results/"
                                                 "arcgis_vs_ogr2ogr-<UTC time>.json)")
    args = parser.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if not shapes or any(s not in SHAPES for s in shapes) or args.repeat < 1:
        parser.error(f"--shapes takes some of {', '.join(SHAPES)}; --repeat at least 1")

    from zoningsync.pgcluster import EmbeddedCluster

    started = dt.datetime.now(dt.UTC)
    ogr2ogr = ensure_ogr2ogr()
    state = Path(tempfile.mkdtemp(prefix="zs-bench-", dir="/tmp"))
    state.chmod(0o755)
    cluster = EmbeddedCluster(state, settings={"synchronous_commit": "off"})
    sources = state / "sources"
    sources.mkdir()
    try:
        asyncio.run(cluster.start())
        admin_url = cluster.url("postgres")
        bench = Bench(admin_url, cluster.data_dir, sources, ogr2ogr)
        took = {"machine": machine(), "versions": versions(ogr2ogr, admin_url)}
        try:
            for shape in shapes:
                bench.serve(args.parcels, shape)
                bench.warm_up()
                for repeat in range(args.repeat):
                    bench.interleaved(repeat)
                if args.large:
                    bench.serve(args.large, shape)
                    bench.large_load()
        finally:
            bench.stop()
    finally:
        asyncio.run(cluster.stop())
        shutil.rmtree(state, ignore_errors=True)

    results = report(bench.samples, shapes, args.large)
    out = args.out or ROOT / "bench" / "results" / (
        f"arcgis_vs_ogr2ogr-{started:%Y%m%dT%H%M%SZ}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    took["machine"]["loadavg_at_end"] = os.getloadavg()
    out.write_text(json.dumps({
        "date": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **took,
        "parcels": args.parcels, "large": args.large, "repeat": args.repeat,
        "shapes": shapes, **results,
        "samples": [s.as_json() for s in bench.samples],
    }, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
