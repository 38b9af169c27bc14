"""`zoningsync quarantine`: records runs rejected, and the operator's triage of them.

`list` pages with `--limit` and hides resolved records unless `--all`; `show`
prints one record as received and why it was rejected; `retry` makes the next
run of each feed with open quarantine read the whole feed again (the simplest
correct re-read: every quarantined key is fetched anew, however it was
planned); `resolve` records a decision in the audit log.
"""

from __future__ import annotations

import click
import orjson

from zoningsync.commands.answers import answer, refuse
from zoningsync.commands.sync import MAX_LIST_ROWS, print_table
from zoningsync.redact import redact


@click.group()
def quarantine() -> None:
    """Records that runs rejected, with the reason."""


@quarantine.command("list")
@click.option("--feed", "feed_id", help="Only this feed (jurisdiction/feed).")
@click.option("--all", "all_runs", is_flag=True,
              help="Every run, not only each feed's latest, and resolved records too.")
@click.option("--limit", default=1000, type=click.IntRange(1, MAX_LIST_ROWS),
              help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON (raw records included).")
@click.pass_context
def quarantine_list(ctx: click.Context, feed_id: str | None, all_runs: bool, limit: int,
                    as_json: bool) -> None:
    """List quarantined records of each feed's latest run (or of all runs)."""
    from zoningsync.commands.context import emit_json, run_async, settings_of
    from zoningsync.services.quarantine import quarantined

    found = run_async(quarantined(settings_of(ctx), feed_id, all_runs=all_runs, limit=limit))
    if as_json:
        emit_json(found)
    else:
        print_table(found, ("id", "feed", "run_id", "source_key", "source_oid", "reason", "detail"),
                    "zoningsync quarantine")



@quarantine.command("show")
@click.argument("quarantine_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def quarantine_show(ctx: click.Context, quarantine_id: int, as_json: bool) -> None:
    """One quarantined record: the raw record as received, and why it was rejected."""
    from zoningsync.commands.context import emit_json, run_async, settings_of
    from zoningsync.services.quarantine import quarantined_record

    row = run_async(quarantined_record(settings_of(ctx), quarantine_id))
    if row is None:
        refuse(ctx, f"there is no quarantined record {quarantine_id}", as_json=as_json)
    if as_json:
        emit_json(row)
        return
    for name in ("id", "feed", "run_id", "source_key", "source_oid", "reason", "detail",
                 "created_at", "resolved_by", "resolution_note"):
        if row.get(name) is not None:
            click.echo(redact(f"{name}: {row[name]}"))
    click.echo("raw:")
    click.echo(redact(orjson.dumps(row["raw"], option=orjson.OPT_INDENT_2).decode()))


@quarantine.command("retry")
@click.option("--feed", "feed_id", help="Only this feed (jurisdiction/feed).")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def quarantine_retry(ctx: click.Context, feed_id: str | None, as_json: bool) -> None:
    """Make the next run of each feed with open quarantine read it all again."""
    from zoningsync.commands.context import run_async, settings_of
    from zoningsync.services.quarantine import retry

    feeds = run_async(retry(settings_of(ctx), feed_id))
    if not feeds:
        refuse(ctx, f"no open quarantine{f' in {feed_id}' if feed_id else ''}; nothing to retry",
               as_json=as_json, data={"feeds": []})
    answer({"action": "quarantine_retry", "feeds": feeds},
           f"the next run of {', '.join(feeds)} reads the whole feed again, quarantined "
           "records included", as_json=as_json)


@quarantine.command("resolve")
@click.argument("quarantine_id", type=click.IntRange(min=1))
@click.option("--note", required=True, help="The decision (kept in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def quarantine_resolve(ctx: click.Context, quarantine_id: int, note: str,
                       as_json: bool) -> None:
    """Record a decision about a quarantined record; `list` then hides it (unless --all)."""
    from zoningsync.commands.context import run_async, settings_of
    from zoningsync.services.quarantine import resolve

    action = run_async(resolve(settings_of(ctx), quarantine_id, note))
    if action is None:
        refuse(ctx, f"quarantined record {quarantine_id} does not exist or is resolved already",
               as_json=as_json, data={"id": quarantine_id})
    answer({"action": "quarantine_resolve", "id": quarantine_id, "audit_id": action,
            "note": note}, f"resolved quarantined record {quarantine_id}: {note}",
           as_json=as_json)
