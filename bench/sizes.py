"""Bytes per row and per index entry of a real loaded county, for docs/scaling.md.

Serves a simulated county (wide shape: 14 fields, 5-13 vertices, holes, parts)
from the portal in its own process, loads it with `zoningsync sync`, publishes
`--publishes` new versions (1% of parcels changed, deleted or added each) and
syncs after each, so history holds a first load's inserts and some updates and
retirements. Then, for every table of the schema that holds rows: the rows, the
heap (main fork), TOAST, each index, and the total, each also per row; and the
history tuples' size by operation (insert, update, retire). Sizes, not
times: a shared machine does not change them.

    .venv/bin/python bench/sizes.py --parcels 20000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
LAYER_PATH = "/arcgis/rest/services/Wake/FeatureServer/0"
SOURCE = """
[jurisdiction]
id = "size-county"

[[feeds]]
id = "parcels"
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

TABLES = """
SELECT c.oid::regclass::text AS name, c.reltuples, pg_relation_size(c.oid) AS heap,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast,
       pg_total_relation_size(c.oid) AS total,
       pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'zoningsync' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC
"""

# History rows by operation: an insert records only its new hash, an update or a
# retirement the whole replaced version (the undo log), so they differ in size.
HISTORY_BY_OP = """
SELECT op, count(*) AS rows, round(avg(pg_column_size(h.*)), 1) AS tuple_bytes
FROM zoningsync.feature_history h GROUP BY op ORDER BY op
"""

INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_relation_size(i.indexrelid) AS bytes,
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i WHERE i.indrelid = $1::regclass ORDER BY 2 DESC
"""


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read())


def sync(db_url: str, sources: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "zoningsync", "--database-url", db_url, "sync",
         "size-county/parcels", "--json"], env={**os.environ, "ZONINGSYNC_SOURCES": str(sources)},
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"sizes: sync failed:\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout)
    return dict(answer[0] if isinstance(answer, list) else answer)


async def measure(db_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("VACUUM ANALYZE")
        tables = []
        for t in await conn.fetch(TABLES):
            rows = int(await conn.fetchval(f"SELECT count(*) FROM {t['name']}"))
            if rows == 0:
                continue
            indexes = [{"name": i["name"], "bytes": i["bytes"],
                        "bytes_per_entry": round(i["bytes"] / rows, 1),
                        "definition": i["definition"]}
                       for i in await conn.fetch(INDEXES, t["name"])]
            tables.append({
                "table": t["name"], "rows": rows, "heap_bytes": t["heap"],
                "toast_bytes": t["toast"], "index_bytes": t["indexes"],
                "total_bytes": t["total"],
                "heap_per_row": round(t["heap"] / rows, 1),
                "toast_per_row": round(t["toast"] / rows, 1),
                "indexes_per_row": round(t["indexes"] / rows, 1),
                "total_per_row": round(t["total"] / rows, 1),
                "index_list": indexes,
            })
        history = [dict(r) for r in await conn.fetch(HISTORY_BY_OP)]
        return tables, history
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--parcels", type=int, default=20_000)
    parser.add_argument("--publishes", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from zoningsync.migrate import apply_migrations
    from zoningsync.pgcluster import EmbeddedCluster

    started = dt.datetime.now(dt.UTC)
    state = Path(tempfile.mkdtemp(prefix="zs-sizes-", dir="/tmp"))
    state.chmod(0o755)
    cluster = EmbeddedCluster(state, settings={"synchronous_commit": "off"})
    portal = subprocess.Popen(
        [sys.executable, "-m", "zoningsync.portal", "--host", "127.0.0.1", "--port", "0",
         "--parcels", str(args.parcels), "--seed", "3", "--shape", "wide"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True)
    try:
        assert portal.stdout is not None
        base_url = portal.stdout.readline().strip()
        asyncio.run(cluster.start())
        db_url = cluster.url("zoningsync")
        asyncio.run(apply_migrations(db_url))
        sources = state / "sources"
        sources.mkdir()
        (sources / "size-county.toml").write_text(SOURCE.format(url=base_url + LAYER_PATH))
        runs = [sync(db_url, sources)]
        for seed in range(args.publishes):
            post(base_url + "/_portal/publish", {"fraction": 0.01, "seed": seed + 1})
            runs.append(sync(db_url, sources))
        tables, history = asyncio.run(measure(db_url))
    finally:
        portal.terminate()
        portal.wait(timeout=30)
        asyncio.run(cluster.stop())
        shutil.rmtree(state, ignore_errors=True)
    for t in tables:
        print(f"{t['table']:<36} {t['rows']:>8} rows  heap {t['heap_per_row']:>7} B/row  "
              f"toast {t['toast_per_row']:>6}  indexes {t['indexes_per_row']:>6}  "
              f"total {t['total_per_row']:>7} B/row")
        for i in t["index_list"]:
            print(f"    {i['name']:<40} {i['bytes_per_entry']:>7} B/entry")
    for h in history:
        print(f"feature_history {h['op']:<7} {h['rows']:>8} rows, {h['tuple_bytes']} B a tuple")
    out = args.out or ROOT / "bench" / "results" / f"sizes-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"),
                               "parcels": args.parcels, "publishes": args.publishes,
                               "runs": runs, "tables": tables,
                               "history_by_op": history}, indent=2, default=str))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
