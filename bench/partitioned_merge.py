"""The merge on a `features` table LIST-partitioned by feed against the plain one.

An experiment for docs/scaling.md, on scratch databases only (the production
schema is not changed): two databases of one throwaway cluster, `plain` as
migrated and `partitioned` where `features` is rebuilt as a table partitioned by
LIST (feed), one partition per feed plus a default, with the same columns,
primary key (feed, source_key) and secondary indexes; `UNIQUE (id)` is left out,
as a partitioned table's unique keys must include the partition key (its views
go with the old table: the runs do not read them).

`--feeds` feeds read one simulated layer (`--parcels` parcels): each is first
loaded into both databases, one feed at a time; then `--publishes` times the
portal publishes 1% of parcels changed and every feed is synced incrementally,
alternating plain and partitioned feed by feed so that a busy neighbour hits
both alike. Compared: `runs.seconds` of first loads and of incremental runs
(median, min, max), and the errors of runs that failed. Timings on a shared
machine are rough.

    .venv/bin/python bench/partitioned_merge.py --feeds 6 --parcels 20000
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

SECONDARY_INDEXES = """
SELECT pg_get_indexdef(indexrelid) FROM pg_index
WHERE indrelid = 'zoningsync.features'::regclass AND NOT indisprimary AND NOT indisunique
"""


async def databases(admin_url: str) -> dict[str, str]:
    from zoningsync.migrate import apply_migrations

    urls = {}
    admin = await asyncpg.connect(admin_url)
    try:
        for name in ("plain", "partitioned"):
            await admin.execute(f'CREATE DATABASE "zs_{name}"')
            base, _, query = admin_url.partition("?")
            urls[name] = f"{base.rsplit('/', 1)[0]}/zs_{name}?{query}"
            await apply_migrations(urls[name])
    finally:
        await admin.close()
    return urls


async def partition_features(url: str, feeds: list[str]) -> None:
    """Rebuild the (empty) features table as LIST (feed), one partition per feed."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            indexes = [r[0] for r in await conn.fetch(SECONDARY_INDEXES)]
            await conn.execute(
                "CREATE TABLE zoningsync.features_p (LIKE zoningsync.features INCLUDING"
                " DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY) PARTITION BY LIST (feed)")
            await conn.execute("DROP TABLE zoningsync.features CASCADE")
            await conn.execute("ALTER TABLE zoningsync.features_p RENAME TO features")
            await conn.execute("ALTER TABLE zoningsync.features ADD CONSTRAINT features_pkey"
                               " PRIMARY KEY (feed, source_key)")
            for definition in indexes:
                await conn.execute(definition)
            for i, feed in enumerate(feeds):
                await conn.execute(f"CREATE TABLE zoningsync.features_{i:02d} PARTITION OF"
                                   f" zoningsync.features FOR VALUES IN ('{feed}')")
            await conn.execute("CREATE TABLE zoningsync.features_default PARTITION OF"
                               " zoningsync.features DEFAULT")
    finally:
        await conn.close()


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
    parser.add_argument("--feeds", type=int, default=6)
    parser.add_argument("--parcels", type=int, default=20_000)
    parser.add_argument("--publishes", type=int, default=2)
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
        urls = asyncio.run(databases(cluster.url("postgres")))
        asyncio.run(partition_features(urls["partitioned"], feeds))
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
    for name, by_error in errors.items():
        for error, runs in by_error.items():
            print(f"{name:<12} failed runs ({runs}): {error}")
    out = args.out or ROOT / "bench" / "results" / (
        f"partitioned_merge-{started:%Y%m%dT%H%M%SZ}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"),
                               "feeds": args.feeds, "parcels": args.parcels,
                               "publishes": args.publishes, "loadavg": os.getloadavg(),
                               "seconds": result, "errors": errors, "raw": seconds}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
