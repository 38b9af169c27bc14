"""`zoningsync pause`, `resume` and `audit`: flags and answers (services/admin.py acts)."""

from __future__ import annotations

from pathlib import Path

import click

from zoningsync.commands.answers import answer, refuse
from zoningsync.errors import UsageError

MAX_LIST_ROWS = 100_000
SOURCES_OPTION = click.option(
    "--sources", "sources_dir", envvar="ZONINGSYNC_SOURCES", show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Directory of jurisdiction TOML files, to find feeds never synced yet.")


@click.command()
@click.argument("target")
@click.option("--reason", required=True, help="Why (kept with the pause and in the audit log).")
@SOURCES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def pause(ctx: click.Context, target: str, reason: str, sources_dir: Path | None,
          as_json: bool) -> None:
    """Pause JURISDICTION or JURISDICTION/FEED: no new runs; a running one stops within seconds.

    The stopped run stays resumable: after `zoningsync resume` the next run continues it.
    """
    from zoningsync.commands.context import run_async, settings_of
    from zoningsync.services import admin

    if not reason.strip():
        raise UsageError("pause --reason: give a reason, e.g. --reason 'county republishing'")
    feeds = run_async(admin.pause(settings_of(ctx), target, reason, sources_dir))
    answer({"action": "pause", "target": target, "feeds": feeds, "reason": reason},
           f"paused {', '.join(feeds)}: {reason}", as_json=as_json)


@click.command()
@click.argument("target")
@SOURCES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def resume(ctx: click.Context, target: str, sources_dir: Path | None, as_json: bool) -> None:
    """Resume JURISDICTION or JURISDICTION/FEED; its next run continues a paused run."""
    from zoningsync.commands.context import run_async, settings_of
    from zoningsync.services import admin

    resumed, feeds = run_async(admin.resume(settings_of(ctx), target, sources_dir))
    if not resumed:
        refuse(ctx, f"{', '.join(feeds)}: not paused; nothing to resume", as_json=as_json,
               data={"action": "resume", "target": target, "feeds": []})
    answer({"action": "resume", "target": target, "feeds": resumed},
           f"resumed {', '.join(resumed)}", as_json=as_json)


@click.command()
@click.option("--target", help="Only actions on this target (a feed, `run N`, a quarantine id).")
@click.option("--limit", default=50, type=click.IntRange(1, MAX_LIST_ROWS),
              help="How many actions, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def audit(ctx: click.Context, target: str | None, limit: int, as_json: bool) -> None:
    """The audit log: every admin action, who asked it, from where, and what happened."""
    from zoningsync.commands.context import emit_json, run_async, settings_of
    from zoningsync.commands.sync import print_table
    from zoningsync.services import admin

    found = run_async(admin.audit_log(settings_of(ctx), target, limit))
    if as_json:
        emit_json(found)
    else:
        print_table(found, ("id", "at", "action", "target", "outcome", "reason", "detail",
                            "os_user", "hostname", "client_addr", "run_id"),
                    "zoningsync audit")
