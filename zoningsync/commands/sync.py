"""`zoningsync sync` and `runs`: run feeds now and look at what runs did."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import structlog
from rich.console import Console
from rich.table import Table

from zoningsync.config import FeedConfig, load_sources, select_feeds
from zoningsync.errors import FeedBusy, ZoningsyncError, describe_failure
from zoningsync.observability import LoopLagProbe
from zoningsync.redact import redact
from zoningsync.settings import Settings

log = structlog.get_logger(__name__)

# A listing is read whole into memory and one table; beyond this, query the database.
MAX_LIST_ROWS = 100_000

SUMMARY_COLUMNS = (
    "feed", "id", "status", "mode", "fetched", "inserted", "updated", "retired", "unchanged",
    "quarantined", "duplicates", "repaired", "chunks_total", "chunks_written",
    "chunks_skipped", "requests", "retries", "bytes", "seconds",
)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column not in ("feed", "status", "mode",
                                                                     "reason", "detail",
                                                                     "source_key") else "left")
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append(f"{value:.2f}" if isinstance(value, float) else
                         "" if value is None else str(value))
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 240).print(table)


def feed_failure(feed: FeedConfig, exc: Exception) -> dict[str, Any]:
    """The summary of a feed whose sync raised: status, one-line error, exit code.

    A feed another process is syncing is `busy` (exit 75, try again later); any
    other error is `failed`, with its own exit code (2 for a configuration mistake
    found on the server, such as a key field the layer lacks) or 1.
    """
    message = describe_failure(exc)
    if isinstance(exc, FeedBusy):
        log.warning("feed busy", feed=feed.full_id, error=message)
        return {"feed": feed.full_id, "status": "busy", "error": message,
                "exit_code": exc.exit_code}
    log.error("sync failed", feed=feed.full_id, error_type=type(exc).__name__, error=message)
    log.debug("sync failure traceback", feed=feed.full_id, exc_info=exc)
    code = exc.exit_code if isinstance(exc, ZoningsyncError) else 1
    return {"feed": feed.full_id, "status": "failed", "error": message, "exit_code": code}


def exit_code_of(results: Sequence[dict[str, Any]]) -> int:
    """0 when every feed succeeded; 75 when every other one was busy; else the worst code."""
    codes = [int(s.get("exit_code", 1)) for s in results if s.get("status") != "succeeded"]
    if not codes:
        return 0
    failed = [c for c in codes if c != FeedBusy.exit_code]
    return max(failed) if failed else FeedBusy.exit_code


async def sync_feeds(settings: Settings, feeds: Sequence[FeedConfig], *, full: bool,
                     interactive: bool | None = None, allow_mass_retire: bool = False,
                     force: bool = False) -> list[dict[str, Any]]:
    """Sync feeds one after another; no failure of one feed stops the others.

    Each feed's summary is its `runs` row, or `feed_failure`'s when the sync
    raised. `allow_mass_retire` lets runs through that the retirement guard
    would hold; `force` syncs paused feeds too.
    """
    from zoningsync.database import ready_database
    from zoningsync.http import Fetcher
    from zoningsync.progress import reporter_for
    from zoningsync.store.connect import create_pool
    from zoningsync.sync import PREPARE_WORKERS, sync_feed

    url = await ready_database(settings)
    # The run's own session, one per staging worker, one storing a first load's pages.
    pool = await create_pool(url, max_size=PREPARE_WORKERS + 2)
    probe = LoopLagProbe()
    probe.start()
    results: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(max_workers=PREPARE_WORKERS,
                                thread_name_prefix="zoningsync-prepare") as executor:
            async with Fetcher(decode_executor=executor) as fetcher:
                for feed in feeds:
                    try:
                        summary = await sync_feed(
                            db_url=url, pool=pool, feed=feed, fetcher=fetcher,
                            executor=executor,
                            reporter=reporter_for(feed.full_id, interactive=interactive),
                            force_full=full, allow_mass_retire=allow_mass_retire,
                            ignore_pause=force,
                        )
                    except Exception as exc:
                        summary = feed_failure(feed, exc)
                    results.append(summary)
    finally:
        await probe.stop()
        await pool.close()
    lag_ms = round(probe.percentile(99) * 1000, 1)
    for summary in results:
        summary["loop_lag_p99_ms"] = lag_ms
    return results


NOW_WAIT_S = 10.0
NOW_POLL_S = 0.2


async def ask_daemons(settings: Settings, feeds: Sequence[FeedConfig]) -> dict[str, int]:
    """Ask running daemons to run these feeds now; the run id of each one a daemon started.

    The request is a row (`run_now_requested_at`) and a NOTIFY on
    `zoningsync_control`; a feed no daemon starts within NOW_WAIT_S has its request
    withdrawn, so the caller can run it in the foreground instead.
    """
    import asyncio

    from zoningsync.database import ready_database
    from zoningsync.store import schedules
    from zoningsync.store.connect import connection

    url = await ready_database(settings)
    ids = [f.full_id for f in feeds]
    async with connection(url) as conn:
        before = {i: await schedules.newest_run(conn, i) for i in ids}
        requested = await schedules.request_run_now(conn, ids)
        started: dict[str, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NOW_WAIT_S
        while requested.keys() - started.keys() and loop.time() < deadline:
            await asyncio.sleep(NOW_POLL_S)
            for feed_id, at in requested.items():
                claimed_at, run_id, resumed = await schedules.newest_run(conn, feed_id)
                began = (run_id, resumed) != before[feed_id][1:]
                if claimed_at is not None and claimed_at >= at and began and run_id:
                    started[feed_id] = run_id
        await schedules.cancel_run_now(conn, [i for i in requested if i not in started])
    return started


@click.command()
@click.argument("target")
@click.option("--sources", "sources_dir", envvar="ZONINGSYNC_SOURCES", show_envvar=True,
              type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of jurisdiction TOML files (default: the settings file's "
                   "`sources`, else ./sources).")
@click.option("--full", is_flag=True, help="Read the whole layer even if incremental is possible.")
@click.option("--allow-mass-retire", is_flag=True,
              help="Let this run retire more of a feed than its max_retire_fraction (a run "
                   "that would is otherwise held, writing nothing).")
@click.option("--now", "via_daemon", is_flag=True,
              help="Ask the running daemons to sync it now and print the run id; run it "
                   "here if no daemon starts it within 10 s.")
@click.option("--force", is_flag=True,
              help="Sync a paused feed anyway, once (it stays paused; a new pause still "
                   "stops the run).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summaries as JSON.")
@click.pass_context
def sync(ctx: click.Context, target: str, sources_dir: Path | None, full: bool,
         allow_mass_retire: bool, via_daemon: bool, force: bool, as_json: bool) -> None:
    """Sync JURISDICTION or JURISDICTION/FEED now, in the foreground (or, with --now,
    on a running daemon).

    Exit 0 when every feed succeeded (or a daemon started it), 75 when every
    other one was busy in another process, else 1 (a failed or held run) or 2
    (configuration).
    """
    from zoningsync.commands.context import emit_json, run_async, settings_of

    settings = settings_of(ctx)
    sources = load_sources(sources_dir or settings.sources)
    feeds = select_feeds(sources, target)
    for error in sources.errors:
        log.warning("source file skipped", file=str(error.file), error=redact(error.summary))
    started: dict[str, int] = {}
    if via_daemon and not full and not allow_mass_retire:
        started = run_async(ask_daemons(settings, feeds))
        feeds = [f for f in feeds if f.full_id not in started]
    results = run_async(sync_feeds(settings, feeds, full=full,
                                   allow_mass_retire=allow_mass_retire,
                                   force=force)) if feeds else []
    if as_json:
        emit_json([{"feed": feed_id, "id": run_id, "status": "started", "on": "daemon"}
                   for feed_id, run_id in started.items()] + results)
    elif started and not results:
        click.echo("\n".join(str(run_id) for run_id in started.values()))
    else:
        for feed_id, run_id in started.items():
            click.echo(f"{feed_id}: run {run_id} started on a daemon", err=True)
        print_table(results, SUMMARY_COLUMNS, "zoningsync run summary")
        for summary in results:
            if summary.get("error"):
                click.echo(f"{summary['feed']}: {summary['error']}", err=True)
    code = exit_code_of(results)
    if code:
        ctx.exit(code)


@click.command()
@click.option("--feed", "feed_id", help="Only this feed (jurisdiction/feed).")
@click.option("--limit", default=20, type=click.IntRange(1, MAX_LIST_ROWS),
              help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def runs(ctx: click.Context, feed_id: str | None, limit: int, as_json: bool) -> None:
    """List recent runs with their counts."""
    from zoningsync.commands.context import emit_json, run_async, settings_of
    from zoningsync.database import ready_database
    from zoningsync.store.connect import connection
    from zoningsync.store.runs import list_runs

    async def go() -> list[dict[str, Any]]:
        url = await ready_database(settings_of(ctx))
        async with connection(url) as conn:
            return await list_runs(conn, feed_id, limit)

    found = run_async(go())
    if as_json:
        emit_json(found)
    else:
        print_table(found, ("started_at", *SUMMARY_COLUMNS, "error"), "zoningsync runs")
