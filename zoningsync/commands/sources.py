"""`zoningsync sources check`: validate every source file before a sync or the daemon does.

It reports every problem of every file at once (a sync reports only the one it
needs), so an operator fixes a directory in one round instead of one error per try.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoningsync.config import SourceSet, load_sources
from zoningsync.errors import SourceConfigError
from zoningsync.redact import redact


def check_report(sources: SourceSet) -> dict[str, Any]:
    """The `--json` answer: each jurisdiction with its feeds, each problem with its file."""
    return {
        "ok": not sources.errors,
        "jurisdictions": [
            {"id": j.id, "file": str(j.source_file), "feeds": [f.id for f in j.feeds]}
            for j in sources.jurisdictions
        ],
        "errors": [
            {"file": str(error.file), "message": redact(message)}
            for error in sources.errors for message in error.messages
        ],
    }


@click.group()
def sources() -> None:
    """Jurisdiction source files (sources/*.toml)."""


@sources.command("check")
@click.option("--sources", "sources_dir", envvar="ZONINGSYNC_SOURCES", show_envvar=True,
              type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of jurisdiction TOML files (default: the settings file's "
                   "`sources`, else ./sources).")
@click.option("--probe", is_flag=True,
              help="Also ask each ArcGIS layer for its metadata and count: the strategy a "
                   "run would use, the count, the CRS, the edit-date field, incremental "
                   "or not (exit 1 if a layer does not answer).")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def check(ctx: click.Context, sources_dir: Path | None, probe: bool, as_json: bool) -> None:
    """Validate every source file; exit 2 if any is broken, listing all its problems."""
    from zoningsync.commands.context import emit_json, run_async, settings_of
    from zoningsync.probe import probe_feeds

    directory = sources_dir or settings_of(ctx).sources
    try:
        loaded = load_sources(directory)
        report = check_report(loaded)
        if probe:
            report["probes"] = run_async(probe_feeds(
                [f for j in loaded.jurisdictions for f in j.feeds]))
            for answer in report["probes"]:
                if "error" in answer:
                    answer["error"] = redact(answer["error"])
    except SourceConfigError as exc:
        if not as_json:
            raise
        report = {"ok": False, "jurisdictions": [],
                  "errors": [{"file": str(directory), "message": redact(exc.message)}]}
    if as_json:
        emit_json(report)
    else:
        for jurisdiction in report["jurisdictions"]:
            click.echo(f"{jurisdiction['id']}  {jurisdiction['file']}  feeds: "
                       f"{', '.join(jurisdiction['feeds'])}")
        for error in report["errors"]:
            click.echo(f"zoningsync: error: {error['message']}", err=True)
        for answer in report.get("probes", []):
            click.echo(redact(probe_line(answer)))
        if report["ok"] and not report["jurisdictions"]:
            click.echo(f"zoningsync: no *.toml source files in {directory}", err=True)
    if not report["ok"]:
        ctx.exit(2)
    if not all(answer["ok"] for answer in report.get("probes", [])):
        ctx.exit(1)


def probe_line(answer: dict[str, Any]) -> str:
    if not answer["ok"]:
        return f"{answer['feed']}: probe failed: {answer['error']}"
    return (f"{answer['feed']}: strategy {answer['strategy']}, {answer['count']} records "
            f"in {answer['pages']} pages, CRS {answer['crs'] or 'unknown'}, edit date "
            f"{answer['edit_date_field'] or 'none'}, incremental "
            f"{'possible' if answer['incremental'] else 'not possible'}")
