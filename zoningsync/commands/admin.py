"""`zoningsync pause`, `resume` and `audit`: act on feeds through the database only.

A pause is a row change, an audit row and a NOTIFY in one transaction, so it
reaches a run of the feed on any host (the run listens on its lease
connection) and opens no port. A feed configured but never synced is
registered from its source file first, so it can be paused before its first run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoningsync.commands.answers import answer, refuse
from zoningsync.errors import UsageError, ZoningsyncError

MAX_LIST_ROWS = 100_000
SOURCES_OPTION = click.option(
    "--sources", "sources_dir", envvar="ZONINGSYNC_SOURCES", show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Directory of jurisdiction TOML files, to find feeds never synced yet.")


async def _target_feeds(url: str, target: str, sources_dir: Path) -> list[Any]:
    """The target's feeds as the database knows them, registering configured ones first."""
    from zoningsync.config import load_sources, select_feeds
    from zoningsync.store.connect import connection
    from zoningsync.store.control import feeds_of_target
    from zoningsync.store.feeds import register_feed

    configured = []
    problem: ZoningsyncError | None = None
    try:
        configured = select_feeds(load_sources(sources_dir), target)
    except ZoningsyncError as exc:
        problem = exc
    async with connection(url) as conn:
        for feed in configured:
            await register_feed(conn, feed)
        found = await feeds_of_target(conn, target)
    if not found:
        raise problem or UsageError(f"unknown feed or jurisdiction {target!r}")
    return found


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
    from zoningsync.database import ready_database
    from zoningsync.store.connect import connection
    from zoningsync.store.control import pause_feeds

    if not reason.strip():
        raise UsageError("pause --reason: give a reason, e.g. --reason 'county republishing'")
    settings = settings_of(ctx)

    async def go() -> list[str]:
        url = await ready_database(settings)
        feeds = [f.feed for f in await _target_feeds(url, target,
                                                       sources_dir or settings.sources)]
        async with connection(url) as conn:
            await pause_feeds(conn, target, feeds, reason)
        return feeds

    feeds = run_async(go())
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
    from zoningsync.database import ready_database
    from zoningsync.store.connect import connection
    from zoningsync.store.control import resume_feeds

    settings = settings_of(ctx)

    async def go() -> tuple[list[str], list[str]]:
        url = await ready_database(settings)
        found = await _target_feeds(url, target, sources_dir or settings.sources)
        paused = [f.feed for f in found if f.paused]
        if paused:
            async with connection(url) as conn:
                await resume_feeds(conn, target, paused)
        return paused, [f.feed for f in found]

    resumed, feeds = run_async(go())
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
    from zoningsync.database import ready_database
    from zoningsync.store.audit import list_actions
    from zoningsync.store.connect import connection

    async def go() -> list[dict[str, Any]]:
        url = await ready_database(settings_of(ctx))
        async with connection(url) as conn:
            return await list_actions(conn, target, limit)

    found = run_async(go())
    if as_json:
        emit_json(found)
    else:
        print_table(found, ("id", "at", "action", "target", "outcome", "reason", "detail",
                            "os_user", "hostname", "client_addr", "run_id"),
                    "zoningsync audit")
