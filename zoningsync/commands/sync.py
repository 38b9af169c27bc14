"""`zoningsync sync` and `runs`: flags and answers; the work is `services/sync.py`'s."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import structlog
from rich.console import Console
from rich.table import Table

from zoningsync.config import load_sources, select_feeds
from zoningsync.redact import redact

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
    from zoningsync.services.sync import ask_daemons, exit_code_of, sync_feeds

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
    from zoningsync.services.sync import recent_runs

    found = run_async(recent_runs(settings_of(ctx), feed_id, limit))
    if as_json:
        emit_json(found)
    else:
        print_table(found, ("started_at", *SUMMARY_COLUMNS, "error"), "zoningsync runs")
