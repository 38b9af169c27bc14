"""A fleet of feeds on a few daemons sharing one PostgreSQL: does the scheduler keep up?

Serves one small simulated layer from the portal in its own process and points N
feeds at it (ten feeds per jurisdiction, each feed its own rows: the feed id is
part of every key), starts M `zoningsync run` daemons on one database, lets them
work for `--seconds`, stops them with SIGTERM, and reads the answer from the
database:

- runs per second: runs that finished inside the window, by status;
- lateness of a due feed: when it was claimed (and when its run started) minus the
  due time it had, p50/p99/max, for first loads (every feed due at start) and for
  scheduled runs apart; a feed still due and unclaimed at the end counts as late
  until then. The due time a claim replaced is recorded by a trigger on
  `schedules` that only this benchmark's throwaway database has;
- overlapping runs of one feed (two runs of a feed whose intervals intersect):
  must be 0;
- each daemon's RSS (VmRSS, peak and last) and the sessions PostgreSQL holds, by
  application_name (peak), sampled every second.

Before the fleet, it measures the scheduler's own cost per tick (`claim_due`, the
one query a tick runs, with every feed of the daemon as candidates) over
schedules tables of 100 and 3,000 rows that are not due (plus a few that are), in
a scratch database: the median time and the plan (EXPLAIN ANALYZE, BUFFERS).
Each of the 40 claims is rolled back; the plan's buffers count grows with the
dead row versions they leave behind, not with the rows not due.

The machine may be shared: every number is rough, and the JSON records the load
average at both ends. Output: a table on stdout, JSON in bench/results/.

    .venv/bin/python bench/fleet.py --feeds 200 --daemons 2 --seconds 40
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
LAYER_PATH = "/arcgis/rest/services/Wake/FeatureServer/0"
FEEDS_PER_JURISDICTION = 10
TICK_DUE_ROWS = 4
TICK_REPEATS = 40
SAMPLE_EVERY_S = 1.0
STOP_WITHIN_S = 60.0
BENCH_APP = "fleet-bench"

FEED = """
[[feeds]]
id = "parcels-{index:02d}"
kind = "parcels"
type = "arcgis"
url = "{url}"
key = "PIN"
schedule = "{schedule}"
rate_limit = {{ requests_per_second = 500, burst = 500 }}
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
"""

# Bench-only instrument: the due time each claim replaced, exactly, at the claim.
CLAIM_LOG = """
CREATE SCHEMA fleet_bench;
CREATE TABLE fleet_bench.claims (
    feed text NOT NULL, node text NOT NULL, due_at timestamptz NOT NULL,
    run_now boolean NOT NULL, claimed_at timestamptz NOT NULL);
CREATE FUNCTION fleet_bench.log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fleet_bench.claims
    VALUES (NEW.feed, NEW.claimed_by, OLD.due_at, OLD.run_now_requested_at IS NOT NULL,
            NEW.claimed_at);
    RETURN NEW;
END $$;
CREATE TRIGGER fleet_bench_claims AFTER UPDATE OF claimed_at ON zoningsync.schedules
    FOR EACH ROW WHEN (NEW.claimed_by IS NOT NULL
                       AND NEW.claimed_at IS DISTINCT FROM OLD.claimed_at)
    EXECUTE FUNCTION fleet_bench.log_claim();
"""

RUNS_BY_STATUS = """
SELECT status, count(*) AS runs FROM zoningsync.runs
WHERE finished_at BETWEEN $1 AND $2 GROUP BY status ORDER BY status
"""

# A claim's lateness, and its run's, by kind: a feed's first claim (a first load:
# every feed is due at start), a later one, and a feed still due and unclaimed at
# the end (late until then, no start). A run starts a runs row, unless the claim
# resumed an unfinished one (runs.started_at is then its first start) or found the
# lease held: those claims have no start, and are counted.
LATENESS = """
WITH ordered AS (
    SELECT c.*, row_number() OVER (PARTITION BY c.feed ORDER BY c.claimed_at) AS nth,
           lead(c.claimed_at) OVER (PARTITION BY c.feed ORDER BY c.claimed_at) AS next_claim
    FROM fleet_bench.claims c WHERE c.claimed_at BETWEEN $1 AND $2 AND NOT c.run_now
), claims AS (
    SELECT o.*, (SELECT min(r.started_at) FROM zoningsync.runs r
                 WHERE r.feed = o.feed AND r.started_at >= o.claimed_at
                   AND r.started_at < coalesce(o.next_claim, 'infinity')) AS started_at
    FROM ordered o
), late AS (
    SELECT CASE WHEN nth = 1 THEN 'first_load' ELSE 'scheduled' END AS kind,
           extract(epoch FROM claimed_at - due_at) AS claim_s,
           extract(epoch FROM started_at - due_at) AS start_s
    FROM claims
    UNION ALL
    SELECT 'waiting_at_end', extract(epoch FROM $2 - s.due_at), NULL
    FROM zoningsync.schedules s WHERE s.claimed_by IS NULL AND s.due_at < $2
)
SELECT kind, count(*) AS claims, count(*) FILTER (WHERE start_s IS NULL) AS no_new_run,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(claim_s, 0)) AS claim_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY greatest(claim_s, 0)) AS claim_p99,
       max(greatest(claim_s, 0)) AS claim_max,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(start_s, 0)) AS start_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY greatest(start_s, 0)) AS start_p99,
       max(greatest(start_s, 0)) AS start_max
FROM late GROUP BY kind ORDER BY kind
"""

FAILURES = """
SELECT left(error, 200) AS error, count(*) AS runs FROM zoningsync.runs
WHERE finished_at BETWEEN $1 AND $2 AND status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 5
"""

OVERLAPS = """
SELECT count(*) FROM zoningsync.runs a JOIN zoningsync.runs b
  ON a.feed = b.feed AND a.id < b.id
 AND a.started_at < coalesce(b.finished_at, 'infinity')
 AND b.started_at < coalesce(a.finished_at, 'infinity')
"""

SESSIONS = """
SELECT application_name, count(*) AS n FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1
"""


# -- the cluster and the databases ------------------------------------------------------

def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def migrated_database(admin_url: str, name: str) -> str:
    from zoningsync.migrate import apply_migrations

    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(admin_url, name)
    await apply_migrations(url)
    return url


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- the scheduler's cost per tick ------------------------------------------------------

async def tick_cost(admin_url: str, sizes: list[int]) -> list[dict[str, Any]]:
    """`claim_due` over `n` schedules rows not due (and a few due), for each n.

    The session holds every feed as the daemon's (`use_daemon_feeds`, as the
    scheduler does once per session); each claim is rolled back, so every
    repeat finds the same due rows.
    """
    from zoningsync.sql import queries
    from zoningsync.store import schedules

    claim_due = queries("schedules.sql")["claim_due"]
    url = await migrated_database(admin_url, "zs_fleet_tick")
    conn = await asyncpg.connect(url, server_settings={"application_name": BENCH_APP,
                                                       "jit": "off"})
    results = []
    try:
        for n in sizes:
            await conn.execute("TRUNCATE zoningsync.schedules, zoningsync.feeds CASCADE")
            ids = [f"tick-{i:05d}/parcels" for i in range(n + TICK_DUE_ROWS)]
            await conn.execute(
                "INSERT INTO zoningsync.feeds (id, jurisdiction, feed, kind, source_type, url)"
                " SELECT id, split_part(id, '/', 1), 'parcels', 'parcels', 'arcgis',"
                " 'http://127.0.0.1/x' FROM unnest($1::text[]) id", ids)
            await conn.execute(
                "INSERT INTO zoningsync.schedules (feed, due_at) SELECT id,"
                " CASE WHEN ord <= $2 THEN now() - interval '1 s'"
                " ELSE now() + interval '1 day' END"
                " FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord)", ids, TICK_DUE_ROWS)
            await conn.execute("VACUUM ANALYZE zoningsync.schedules")
            await conn.execute("ANALYZE zoningsync.feeds")
            await schedules.use_daemon_feeds(conn, ids)
            timings = []
            claimed: list[schedules.Claim] = []
            for _ in range(TICK_REPEATS):
                tr = conn.transaction()
                await tr.start()
                began = time.perf_counter()
                claimed = await schedules.claim_due(conn, "tick-node", [], TICK_DUE_ROWS)
                timings.append((time.perf_counter() - began) * 1000)
                await tr.rollback()
            tr = conn.transaction()
            await tr.start()
            plan = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + claim_due,
                                       "tick-node", [], TICK_DUE_ROWS)
            await tr.rollback()
            top = json.loads(plan)[0]
            results.append({
                "not_due_rows": n, "due_rows": TICK_DUE_ROWS, "claimed": len(claimed),
                "median_ms": round(statistics.median(timings), 3),
                "min_ms": round(min(timings), 3),
                "plan_planning_ms": top["Planning Time"],
                "plan_execution_ms": top["Execution Time"],
                "plan_shared_buffers": plan_buffers(top["Plan"]),
                "plan_nodes": plan_nodes(top["Plan"]),
            })
    finally:
        await conn.close()
        await drop_database(admin_url, "zs_fleet_tick")
    return results


def plan_buffers(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def plan_nodes(node: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per plan node: type, relation or index, rows actually returned."""
    where = node.get("Index Name") or node.get("Relation Name") or ""
    line = f"{'  ' * depth}{node['Node Type']} {where} rows={node.get('Actual Rows')}".rstrip()
    lines = [line]
    for child in node.get("Plans", []):
        lines += plan_nodes(child, depth + 1)
    return lines


# -- the fleet ---------------------------------------------------------------------------

def write_sources(directory: Path, url: str, feeds: int, schedule: str) -> None:
    """`feeds` feeds on one layer, ten to a jurisdiction file."""
    directory.mkdir(parents=True, exist_ok=True)
    for j in range(0, feeds, FEEDS_PER_JURISDICTION):
        count = min(FEEDS_PER_JURISDICTION, feeds - j)
        body = f'[jurisdiction]\nid = "fleet-{j // FEEDS_PER_JURISDICTION:04d}"\n' + "".join(
            FEED.format(index=i, url=url, schedule=schedule) for i in range(count))
        (directory / f"fleet-{j // FEEDS_PER_JURISDICTION:04d}.toml").write_text(body)


class Portal:
    """The simulated portal in a process of its own (answer cache on)."""

    def __init__(self, parcels: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoningsync.portal", "--host", "127.0.0.1", "--port", "0",
             "--parcels", str(parcels), "--seed", "11", "--shape", "thin",
             "--answer-cache-mb", "64"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            sys.exit("fleet: the portal did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@dataclass
class Samples:
    """What the sampler saw every second: RSS per daemon, sessions per name."""

    rss_mb: dict[int, list[float]] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    total_sessions: list[int] = field(default_factory=list)

    def rss(self, pid: int) -> None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                self.rss_mb.setdefault(pid, []).append(int(line.split()[1]) / 1024)

    def connections(self, rows: list[asyncpg.Record]) -> None:
        self.total_sessions.append(sum(r["n"] for r in rows))
        for r in rows:
            name = r["application_name"] or "(none)"
            self.sessions[name] = max(self.sessions.get(name, 0), r["n"])


async def start_daemon(db_url: str, sources: Path, log_path: Path, node: str,
                       max_concurrent: int) -> asyncio.subprocess.Process:
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "zoningsync", "--database-url", db_url, "run",
            "--sources", str(sources), "--max-concurrent", str(max_concurrent),
            "--node", node, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
            env={**os.environ, "ZONINGSYNC_METRICS": "off", "ZONINGSYNC_LOG_LEVEL": "warning"})


async def run_fleet(admin_url: str, state: Path, args: argparse.Namespace) -> dict[str, Any]:
    db_url = await migrated_database(admin_url, "zs_fleet")
    conn = await asyncpg.connect(db_url, server_settings={"application_name": BENCH_APP})
    portal = Portal(args.parcels)
    daemons: list[asyncio.subprocess.Process] = []
    samples = Samples()
    try:
        await conn.execute(CLAIM_LOG)
        sources = state / "sources"
        write_sources(sources, portal.base_url + LAYER_PATH, args.feeds, args.schedule)
        window_start = await conn.fetchval("SELECT clock_timestamp()")
        for i in range(args.daemons):
            daemons.append(await start_daemon(db_url, sources, state / f"daemon-{i}.log",
                                              f"fleet-{i}", args.max_concurrent))
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            for proc in daemons:
                samples.rss(proc.pid)
            samples.connections(await conn.fetch(SESSIONS))
            if any(proc.returncode is not None for proc in daemons):
                break
            await asyncio.sleep(SAMPLE_EVERY_S)
        window_end = await conn.fetchval("SELECT clock_timestamp()")
        exits = await stop_daemons(daemons)
        return await fleet_results(conn, window_start, window_end, samples, daemons, exits,
                                   state)
    finally:
        for proc in daemons:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        portal.stop()
        await conn.close()


async def stop_daemons(daemons: list[asyncio.subprocess.Process]) -> list[int | None]:
    for proc in daemons:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in daemons:
        try:
            await asyncio.wait_for(proc.wait(), STOP_WITHIN_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return [proc.returncode for proc in daemons]


async def fleet_results(conn: asyncpg.Connection[Any], start: dt.datetime, end: dt.datetime,
                        samples: Samples, daemons: list[asyncio.subprocess.Process],
                        exits: list[int | None], state: Path) -> dict[str, Any]:
    seconds = (end - start).total_seconds()
    by_status = {r["status"]: r["runs"] for r in await conn.fetch(RUNS_BY_STATUS, start, end)}
    lateness = {r["kind"]: {
        key: (round(float(r[key]), 3) if r[key] is not None else None)
        for key in ("claim_p50", "claim_p99", "claim_max", "start_p50", "start_p99",
                    "start_max")} | {"claims": r["claims"], "no_new_run": r["no_new_run"]}
        for r in await conn.fetch(LATENESS, start, end)}
    errors = [line for i in range(len(daemons))
              for line in (state / f"daemon-{i}.log").read_text().splitlines()[-5:]
              if exits[i] not in (0, None)]
    return {
        "window_s": round(seconds, 1),
        "runs_by_status": by_status,
        "runs_per_s": round(sum(by_status.values()) / seconds, 3),
        "succeeded_per_s": round(by_status.get("succeeded", 0) / seconds, 3),
        "lateness_s": lateness,
        "failures": {r["error"]: r["runs"] for r in await conn.fetch(FAILURES, start, end)},
        "overlapping_runs": await conn.fetchval(OVERLAPS),
        "daemon_rss_mb": [{"peak": round(max(v), 1), "last": round(v[-1], 1)}
                          for v in samples.rss_mb.values()],
        "sessions_peak_by_application": dict(sorted(samples.sessions.items())),
        "sessions_peak_total": max(samples.total_sessions, default=0),
        "daemon_exit_codes": exits,
        "daemon_log_tail_of_failures": errors,
    }


# -- report ------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    return {"nproc": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_at_start": os.getloadavg()}


def print_report(result: dict[str, Any]) -> None:
    for tick in result.get("tick_cost", []):
        print(f"tick (claim_due) with {tick['not_due_rows']:>5} rows not due: median "
              f"{tick['median_ms']:.2f} ms, planning {tick['plan_planning_ms']:.2f} ms, execution "
              f"{tick['plan_execution_ms']:.2f} ms, "
              f"{tick['plan_shared_buffers']} buffers")
        for line in tick["plan_nodes"]:
            print(f"    {line}")
    fleet = result.get("fleet")
    if fleet is None:
        return
    print(f"\n{result['feeds']} feeds, {result['daemons']} daemons, {fleet['window_s']} s: "
          f"{fleet['runs_per_s']} runs/s ({fleet['runs_by_status']})")
    for kind, late in fleet["lateness_s"].items():
        print(f"lateness {kind:<14} ({late['claims']} claims, {late['no_new_run']} without a "
              f"new run): claim p50 {late['claim_p50']} "
              f"p99 {late['claim_p99']} max {late['claim_max']} s; run start p50 "
              f"{late['start_p50']} p99 {late['start_p99']} max {late['start_max']} s")
    for error, runs in fleet["failures"].items():
        print(f"failed runs ({runs}): {error}")
    print(f"overlapping runs of one feed: {fleet['overlapping_runs']} (must be 0)")
    print(f"daemon RSS MB: {fleet['daemon_rss_mb']}")
    print(f"sessions (peak): {fleet['sessions_peak_by_application']}, "
          f"total {fleet['sessions_peak_total']}")
    if fleet["daemon_log_tail_of_failures"]:
        print("a daemon failed:\n" + "\n".join(fleet["daemon_log_tail_of_failures"]))


async def bench(admin_url: str, state: Path, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"feeds": args.feeds, "daemons": args.daemons,
                              "max_concurrent": args.max_concurrent,
                              "schedule": args.schedule, "parcels_per_layer": args.parcels}
    admin = await asyncpg.connect(admin_url)
    try:
        result["postgresql"] = await admin.fetchval("SHOW server_version")
    finally:
        await admin.close()
    if args.tick_rows:
        result["tick_cost"] = await tick_cost(admin_url, args.tick_rows)
    if args.feeds > 0:
        result["fleet"] = await run_fleet(admin_url, state, args)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000, help="0: only the tick cost")
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--schedule", default="every 60s")
    parser.add_argument("--parcels", type=int, default=20, help="parcels of the one layer")
    parser.add_argument("--tick-rows", default="100,3000",
                        help="schedules rows not due for the tick cost, comma-separated "
                             "('' skips it)")
    parser.add_argument("--database-url",
                        help="admin URL of a PostgreSQL + PostGIS server to use (it gets "
                             "databases zs_fleet and zs_fleet_tick); default: a throwaway "
                             "embedded cluster")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.tick_rows = [int(n) for n in args.tick_rows.split(",") if n.strip()]
    if args.feeds < 0 or args.daemons < 1 or args.seconds <= 0:
        parser.error("--feeds at least 0, --daemons at least 1, --seconds above 0")

    from zoningsync.pgcluster import EmbeddedCluster

    started = dt.datetime.now(dt.UTC)
    state = Path(tempfile.mkdtemp(prefix="zs-fleet-", dir="/tmp"))
    state.chmod(0o755)
    took = {"date": started.isoformat(timespec="seconds"), "machine": machine(),
            "shared_machine_note": "numbers are rough: the machine is shared"}
    cluster = None
    try:
        if args.database_url:
            admin_url = args.database_url
        else:
            cluster = EmbeddedCluster(state, settings={"synchronous_commit": "off",
                                                       "max_connections": "300"})
            asyncio.run(cluster.start())
            admin_url = cluster.url("postgres")
        result = asyncio.run(bench(admin_url, state, args))
    finally:
        if cluster is not None:
            asyncio.run(cluster.stop())
        shutil.rmtree(state, ignore_errors=True)
    took["machine"]["loadavg_at_end"] = os.getloadavg()
    result = {**took, **result}
    print_report(result)
    out = args.out or ROOT / "bench" / "results" / f"fleet-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
