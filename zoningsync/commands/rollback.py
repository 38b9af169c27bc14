"""`zoningsync rollback RUN_ID`: undo a run exactly, or say why not (store/rollback.py)."""

from __future__ import annotations

import click

from zoningsync.commands.answers import answer, refuse


@click.command()
@click.argument("run_id", type=click.IntRange(min=1))
@click.option("--cascade", is_flag=True,
              help="Also roll back the later runs that changed the same rows, newest first.")
@click.option("--dry-run", is_flag=True, help="Print what would be undone; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def rollback(ctx: click.Context, run_id: int, cascade: bool, dry_run: bool,
             as_json: bool) -> None:
    """Restore every row RUN_ID changed to its state just before it, and pause its feed.

    One transaction under the feed's lease: a crash leaves the database as it was.
    Refused (exit 1) for a running or rolled-back run, or when later runs changed
    the same rows (unless --cascade).
    """
    from zoningsync.commands.context import run_async, settings_of
    from zoningsync.services.rollback import roll_back
    from zoningsync.store.rollback import RollbackRefused

    try:
        result = run_async(roll_back(settings_of(ctx), run_id, cascade=cascade,
                                     dry_run=dry_run))
    except RollbackRefused as refused:
        refuse(ctx, refused.message, as_json=as_json, data={"run_id": run_id})
    data = result.to_json()
    counts = ", ".join(f"{op} {n}" for op, n in data["ops"].items())
    runs = ", ".join(str(u.run_id) for u in result.undone)
    feed = result.feed
    if dry_run:
        sample = ", ".join(key for u in result.undone for key in u.sample[:3]) or "none"
        line = f"would roll back run(s) {runs} of {feed}: undo {counts}; sample keys: {sample}"
    else:
        line = (f"rolled back run(s) {runs} of {feed} as run {result.rollback_run_id}: undid "
                f"{counts}; {feed} is paused (`zoningsync resume {feed}` to sync it again)")
    answer(data, line, as_json=as_json)
