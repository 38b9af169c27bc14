"""The schema migrated to 0012 (plain `features`) against 0013 (partitioned by feed).

For docs/scaling.md, on scratch databases of one throwaway cluster: `plain` is
migrated with migrations 0001-0012 only, and 0013 is then recorded as applied
without being run, so that today's zoningsync (whose statements run on both
schemas) accepts it; `partitioned` is migrated as shipped, the real 0013:
features and feature_history HASH-partitioned by feed into 16 partitions each.

`--feeds` feeds read one simulated layer (`--parcels` parcels, wide shape):
each is first loaded into both databases, one feed at a time, alternating plain
and partitioned so that a busy neighbour hits both alike; then `--publishes`
times the portal publishes 1% of parcels changed and every feed is synced
incrementally, alternating the same way. Compared: `runs.seconds` of first
loads and of incremental runs (median, min, max), the errors of runs that
failed, and, after VACUUM ANALYZE of both, two planner queries timed by
EXPLAIN ANALYZE (planning and execution, median of `--repeats`, alternating,
in sessions set as zoningsync's own): the parcels of every feed intersecting a
box (the `parcels` view), as planned and without parallel workers, and one
feed's `parcel_history`. Timings on a shared machine are rough.

    .venv/bin/python bench/partitioned_merge.py --feeds 4 --parcels 10000 --publishes 1
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
LAYER_PATH = "/arcgis/rest/services/Wake/FeatureServer/0"
JURISDICTION = "part-county"
FEED = """
[[feeds]]
id = "parcels-{index:02d}"
kind = "parcels"
type = "arcgis"
url = "{url}"
key = "PIN"
rate_limit = {{ requests_per_second = 500, burst = 500 }}
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
zoning_desc = "ZONE_DESC"
address = "SITE_ADDRESS"
"""

PLAIN_VERSION = 12
# The parcels of every feed in a box around the layer's centre, a tenth of its
# extent on each side: what a planner's map view asks.
PARCELS_IN_BOX = """
SELECT count(*), sum(ST_Area(geom))
FROM zoningsync.parcels
WHERE ST_Intersects(geom, ST_MakeEnvelope($1, $2, $3, $4, 4326))
"""
ONE_FEEDS_HISTORY = """
SELECT op, count(*), count(zoning_after) FROM zoningsync.parcel_history WHERE feed = $1
GROUP BY op
"""
BOX = """
SELECT ST_XMin(e) + (ST_XMax(e) - ST_XMin(e)) * 0.45, ST_YMin(e) + (ST_YMax(e) - ST_YMin(e)) * 0.45,
       ST_XMin(e) + (ST_XMax(e) - ST_XMin(e)) * 0.55, ST_YMin(e) + (ST_YMax(e) - ST_YMin(e)) * 0.55
FROM (SELECT ST_Extent(geom)::geometry AS e FROM zoningsync.features) AS x
"""


async def databases(admin_url: str, plain_migrations: Path) -> dict[str, str]:
    """`plain` at 0012 (0013 recorded, not run) and `partitioned` at 0013."""
    from zoningsync.migrate import apply_migrations, available_migrations

    for migration in available_migrations():
        if migration.version <= PLAIN_VERSION:
            (plain_migrations / migration.name).write_text(migration.sql)
    urls = {}
    admin = await asyncpg.connect(admin_url)
    try:
        for name in ("plain", "partitioned"):
            await admin.execute(f'CREATE DATABASE "zs_{name}"')
            base, _, query = admin_url.partition("?")
            urls[name] = f"{base.rsplit('/', 1)[0]}/zs_{name}?{query}"
        await apply_migrations(urls["plain"], plain_migrations)
        await apply_migrations(urls["partitioned"])
    finally:
        await admin.close()
    conn = await asyncpg.connect(urls["plain"])
    try:
        for migration in available_migrations():
            if migration.version > PLAIN_VERSION:
                await conn.execute(
                    "INSERT INTO zoningsync.schema_migrations (version, name, checksum)"
                    " VALUES ($1, $2, $3)", migration.version, migration.name,
                    migration.checksum)
    finally:
        await conn.close()
    return urls


async def explain_ms(conn: asyncpg.Connection[Any], query: str, args: tuple[Any, ...],
                     workers: int | None) -> tuple[float, float]:
    """Planning and execution time (ms) of one run of the query, as EXPLAIN ANALYZE says.

    `workers` caps max_parallel_workers_per_gather for this query (None: the default).
    """
    async with conn.transaction():
        if workers is not None:
            await conn.execute(f"SET LOCAL max_parallel_workers_per_gather = {workers}")
        [plan] = json.loads(await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args))
    return float(plan["Planning Time"]), float(plan["Execution Time"])


async def planner_queries(urls: dict[str, str], feed: str, repeats: int
                          ) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Times of the planner queries on both databases, alternating, warm caches.

    Sessions as zoningsync's own (jit off: JIT compilation took 60 ms of a 110 ms
    history query, on either schema once its cost passed jit_above_cost). The box
    query is timed twice: as planned (a Gather over the partitions' scans is
    chosen on the partitioned table, and starting its workers on a busy machine
    is most of its time) and without parallel workers.
    """
    from zoningsync.store.connect import SERVER_SETTINGS

    conns = {name: await asyncpg.connect(url, server_settings=SERVER_SETTINGS)
             for name, url in urls.items()}
    try:
        for conn in conns.values():
            await conn.execute("VACUUM ANALYZE")
        corners = await conns["plain"].fetchrow(BOX)
        assert corners is not None
        box = tuple(corners)
        queries: tuple[tuple[str, str, tuple[Any, ...], int | None], ...] = (
            ("box", PARCELS_IN_BOX, box, None),
            ("box, no parallel workers", PARCELS_IN_BOX, box, 0),
            ("history", ONE_FEEDS_HISTORY, (feed,), None))
        times: dict[str, dict[str, dict[str, list[float]]]] = {
            name: {q[0]: {"planning": [], "execution": []} for q in queries} for name in urls}
        for round_ in range(repeats + 1):
            for name, conn in conns.items():
                for query_name, query, args, workers in queries:
                    planning, execution = await explain_ms(conn, query, args, workers)
                    if round_:  # the first round warms the caches
                        times[name][query_name]["planning"].append(planning)
                        times[name][query_name]["execution"].append(execution)
    finally:
        for conn in conns.values():
            await conn.close()
    return times


def sync(db_url: str, sources: Path, feed: str) -> dict[str, Any]:
    """The run summary, or {"failed": the run's error} when it failed."""
    done = subprocess.run(
        [sys.executable, "-m", "zoningsync", "--database-url", db_url, "sync", feed, "--json"],
        env={**os.environ, "ZONINGSYNC_SOURCES": str(sources)},
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines()
                 if '"run failed"' in line and '"error"' in line]
        return {"failed": json.loads(lines[-1]).get("error") if lines else
                done.stderr[-300:] + done.stdout[-300:]}
    answer = json.loads(done.stdout)
    return dict(answer[0] if isinstance(answer, list) else answer)


def publish(base_url: str, seed: int) -> None:
    request = urllib.request.Request(
        base_url + "/_portal/publish", method="POST",
        data=json.dumps({"fraction": 0.01, "seed": seed, "warm": True}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        answer.read()


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=4)
    parser.add_argument("--parcels", type=int, default=10_000)
    parser.add_argument("--publishes", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from zoningsync.pgcluster import EmbeddedCluster

    started = dt.datetime.now(dt.UTC)
    state = Path(tempfile.mkdtemp(prefix="zs-part-", dir="/tmp"))
    state.chmod(0o755)
    cluster = EmbeddedCluster(state, settings={"synchronous_commit": "off"})
    portal = subprocess.Popen(
        [sys.executable, "-m", "zoningsync.portal", "--host", "127.0.0.1", "--port", "0",
         "--parcels", str(args.parcels), "--seed", "5", "--shape", "wide"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True)
    feeds = [f"{JURISDICTION}/parcels-{i:02d}" for i in range(args.feeds)]
    seconds: dict[str, dict[str, list[float]]] = {
        name: {"full": [], "incremental": []} for name in ("plain", "partitioned")}
    errors: dict[str, dict[str, int]] = {}
    try:
        assert portal.stdout is not None
        base_url = portal.stdout.readline().strip()
        asyncio.run(cluster.start())
        plain_migrations = state / "migrations-0012"
        plain_migrations.mkdir()
        urls = asyncio.run(databases(cluster.url("postgres"), plain_migrations))
        sources = state / "sources"
        sources.mkdir()
        (sources / f"{JURISDICTION}.toml").write_text(
            f'[jurisdiction]\nid = "{JURISDICTION}"\n' + "".join(
                FEED.format(index=i, url=base_url + LAYER_PATH) for i in range(args.feeds)))
        for round_ in range(args.publishes + 1):
            if round_:
                publish(base_url, round_)
            for feed in feeds:
                for name, url in urls.items():
                    summary = sync(url, sources, feed)
                    if "failed" in summary:
                        errors.setdefault(name, {}).setdefault(summary["failed"], 0)
                        errors[name][summary["failed"]] += 1
                    else:
                        seconds[name][str(summary["mode"])].append(float(summary["seconds"]))
        queries = asyncio.run(planner_queries(urls, feeds[0], args.repeats))
    finally:
        portal.terminate()
        portal.wait(timeout=30)
        asyncio.run(cluster.stop())
        shutil.rmtree(state, ignore_errors=True)
    result = {name: {mode: spread(v) for mode, v in modes.items() if v}
              for name, modes in seconds.items()}
    for name, modes in result.items():
        for mode, s in modes.items():
            print(f"{name:<12} {mode:<12} runs.seconds median {s['median']} "
                  f"(min {s['min']}, max {s['max']}, n {s['n']})")
    query_result = {name: {q: {part: spread(v) for part, v in parts.items()}
                           for q, parts in by_query.items()}
                    for name, by_query in queries.items()}
    for name, by_query in query_result.items():
        for q, parts in by_query.items():
            print(f"{name:<12} {q:<26} ms planning median {parts['planning']['median']}"
                  f" (min {parts['planning']['min']}, max {parts['planning']['max']}),"
                  f" execution median {parts['execution']['median']}"
                  f" (min {parts['execution']['min']}, max {parts['execution']['max']})")
    for name, by_error in errors.items():
        for error, runs in by_error.items():
            print(f"{name:<12} failed runs ({runs}): {error}")
    out = args.out or ROOT / "bench" / "results" / (
        f"partitioned_merge-{started:%Y%m%dT%H%M%SZ}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"),
                               "feeds": args.feeds, "parcels": args.parcels,
                               "publishes": args.publishes, "repeats": args.repeats,
                               "loadavg": os.getloadavg(), "seconds": result,
                               "queries": query_result, "errors": errors,
                               "raw": {"seconds": seconds, "queries": queries}}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
