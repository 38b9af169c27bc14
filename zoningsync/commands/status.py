"""`zoningsync status`: what every feed the database knows is doing, daemons or not."""

from __future__ import annotations

import click

from zoningsync.commands.context import emit_json, run_async, settings_of

COLUMNS = ("feed", "paused", "running_on", "last_run", "last_status", "next_due", "lag_s",
           "last_success_at", "pause_reason")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON: a list of feed rows.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """One row per feed: paused, where it runs, its last run, when it is next due."""
    from zoningsync.commands.sync import print_table
    from zoningsync.services.status import feed_states

    rows = run_async(feed_states(settings_of(ctx)))
    if as_json:
        emit_json(rows)
        return
    flat = [{**row, "paused": "yes" if row["paused"] else "",
             "last_run": (row["last_run"] or {}).get("id"),
             "last_status": (row["last_run"] or {}).get("status")} for row in rows]
    print_table(flat, COLUMNS, "zoningsync status")
