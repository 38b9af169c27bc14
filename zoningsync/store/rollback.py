"""Exact rollback of a run, from history, in one transaction under the feed's lease.

`feature_history` and `case_history` hold, for every row a run changed, the
version it replaced; a key's first history row of the run is its state just
before the run (absent before an insert). The rollback puts every such row back
as it was (geometry, attributes, row hash, zoning code, id and timestamps),
writes history for each row it restores (as a run of its own, mode
`rollback`), resets the checkpoints of the chunks the run touched, marks the
run's zoning changes rolled back, marks the run `rolled_back` and pauses the
feed so its next run does not ingest the same bad data at once.

A later run that changed rows the run changed would be overwritten: the
rollback is refused, naming those runs, unless `cascade`, which undoes them too,
newest first, in the same transaction. The lease keeps runs of the feed out
while it works, and a `kill -9` loses the transaction, leaving the database
as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoningsync.errors import FeedBusy, ZoningsyncError
from zoningsync.sql import queries
from zoningsync.store.audit import record_action
from zoningsync.store.cases import retire_cases
from zoningsync.store.connect import Conn, connection
from zoningsync.store.control import mark_paused, notify
from zoningsync.store.lease import feed_lease, lease_holder
from zoningsync.store.staging import clear_run_staging

SQL = queries("rollback.sql")
SAMPLE_KEYS = 10
OPS = ("insert", "update", "retire")


class RollbackRefused(ZoningsyncError):
    """The run cannot be rolled back as asked; nothing was changed."""


@dataclass
class RunUndo:
    """What undoing one run does: its changes by op (features and cases), and the restore."""

    run_id: int
    ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    case_ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    sample: list[str] = field(default_factory=list)
    deleted: int = 0  # rows the run inserted, removed
    reverted: int = 0  # rows the run updated, back to their prior version
    reinserted: int = 0  # rows the run retired, stored again
    checkpoints: int = 0  # checkpoints put back, recomputed or dropped
    zoning_changes: int = 0  # the run's zoning changes marked rolled back

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ops": self.ops, "case_ops": self.case_ops,
                "sample": self.sample, "restored": {
                    "deleted": self.deleted, "reverted": self.reverted,
                    "reinserted": self.reinserted},
                "checkpoints": self.checkpoints, "zoning_changes": self.zoning_changes}


@dataclass
class RollbackResult:
    run_id: int
    feed: str
    dry_run: bool
    undone: list[RunUndo]
    rollback_run_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        ops = {op: sum(u.ops[op] + u.case_ops[op] for u in self.undone) for op in OPS}
        return {
            "run_id": self.run_id, "feed": self.feed, "dry_run": self.dry_run,
            "rollback_run_id": self.rollback_run_id,
            "runs": [u.run_id for u in self.undone], "ops": ops,
            "restored": sum(u.deleted + u.reverted + u.reinserted for u in self.undone),
            "paused": not self.dry_run, "details": [u.to_json() for u in self.undone],
        }


async def rollback(db_url: str, run_id: int, *, cascade: bool = False,
                   dry_run: bool = False) -> RollbackResult:
    """Roll back `run_id` (and, with `cascade`, the later runs in the way), or say why not.

    A dry run changes nothing (no audit row either) and needs no lease.
    """
    async with connection(db_url) as conn:
        run = await conn.fetchrow(SQL["run_to_roll_back"], run_id)
        if run is None:
            raise RollbackRefused(f"there is no run {run_id}; `zoningsync runs` lists them")
        feed = str(run["feed"])
        if dry_run:
            targets = await _targets(conn, run_id, feed, cascade=cascade)
            return RollbackResult(run_id, feed, True,
                                  [await _plan_undo(conn, t) for t in targets])
    try:
        async with feed_lease(db_url, feed) as lease:
            return await _rollback_under_lease(lease, run_id, feed, cascade=cascade)
    except FeedBusy as busy:
        raise await _refuse(
            db_url, run_id, f"run {run_id}'s feed {feed} is being synced right now "
            f"({busy.message}); pause it first: `zoningsync pause {feed} --reason ...`, "
            "then roll back") from None


async def _rollback_under_lease(conn: Conn, run_id: int, feed: str, *, cascade: bool
                                ) -> RollbackResult:
    try:
        targets = await _targets(conn, run_id, feed, cascade=cascade)
    except RollbackRefused as refused:
        await record_action(conn, "rollback", f"run {run_id}", outcome="refused",
                            detail=refused.message)
        raise
    result = RollbackResult(run_id, feed, False, [])
    async with conn.transaction():
        await conn.execute(SQL["create_rollback_scratch"])
        rollback_id = int(await conn.fetchval(SQL["start_rollback_run"], feed,
                                              {"rolls_back": targets}))
        for target in targets:
            result.undone.append(await _undo(conn, target, feed, rollback_id))
        await conn.execute(
            SQL["finish_rollback_run"], rollback_id,
            sum(u.reinserted for u in result.undone), sum(u.reverted for u in result.undone),
            sum(u.deleted for u in result.undone), sum(u.checkpoints for u in result.undone))
        reason = f"rolled back run {run_id}"
        await mark_paused(conn, [feed], reason)
        await notify(conn, "pause", feed, reason)
        await conn.execute(SQL["reset_feed_success"], feed)
        done = ", ".join(f"run {t}" for t in targets)
        ops = ", ".join(f"{op} {n}" for op, n in result.to_json()["ops"].items())
        await record_action(
            conn, "rollback", f"run {run_id}", outcome="done", run_id=rollback_id,
            detail=f"rolled back {done} as run {rollback_id} (undid {ops}); {feed} paused")
    result.rollback_run_id = rollback_id
    return result


async def _targets(conn: Conn, run_id: int, feed: str, *, cascade: bool) -> list[int]:
    """The runs to undo, newest first: the run, and with `cascade` every later one in the way."""
    run = await conn.fetchrow(SQL["run_to_roll_back"], run_id)
    assert run is not None
    if run["mode"] == "rollback":
        raise RollbackRefused(f"run {run_id} is itself a rollback; roll back no further than "
                              "the runs it undid were, or sync the feed again")
    if run["status"] == "rolled_back":
        raise RollbackRefused(f"run {run_id} is already rolled back")
    if run["status"] == "running" and not await _lease_free(conn, feed):
        raise RollbackRefused(f"run {run_id} is still running; pause it first: "
                              f"`zoningsync pause {feed} --reason ...`")
    chosen = {run_id}
    pending = [run_id]
    while pending:
        later = [int(r["id"]) for r in await conn.fetch(SQL["later_runs_touching"],
                                                        pending.pop(), feed)]
        if later and not cascade:
            raise RollbackRefused(
                f"later runs changed rows that run {run_id} changed: "
                f"{', '.join(f'run {r}' for r in later)}; roll them back with it "
                f"(`zoningsync rollback {run_id} --cascade`) or not at all")
        for other in later:
            if other not in chosen:
                chosen.add(other)
                pending.append(other)
    return sorted(chosen, reverse=True)


async def _lease_free(conn: Conn, feed: str) -> bool:
    """A run marked running whose lease nobody else holds was killed: it is not running."""
    holder = await lease_holder(conn, feed)
    return holder is None or holder["pid"] == await conn.fetchval("SELECT pg_backend_pid()")


async def _plan_undo(conn: Conn, run_id: int) -> RunUndo:
    undo = RunUndo(run_id)
    for name, counts in (("feature_ops", undo.ops), ("case_ops", undo.case_ops)):
        for row in await conn.fetch(SQL[name], run_id, SAMPLE_KEYS):
            counts[row["op"]] = int(row["n"])
            undo.sample.extend(row["sample"])
    undo.sample = sorted(undo.sample)[:SAMPLE_KEYS]
    return undo


async def _undo(conn: Conn, run_id: int, feed: str, rollback_id: int) -> RunUndo:
    """Undo one run in the caller's transaction (the later ones in the way are undone)."""
    undo = await _plan_undo(conn, run_id)
    await conn.execute(SQL["empty_rollback_scratch"])
    await conn.execute(SQL["fill_rollback_rows"], run_id)
    await conn.execute(SQL["analyze_rollback_rows"])
    await conn.execute(SQL["fill_rollback_chunks"], run_id, feed)
    undo.deleted = int(await conn.fetchval(SQL["undo_inserts"], feed, rollback_id))
    undo.reverted = int(await conn.fetchval(SQL["undo_updates"], feed, rollback_id))
    undo.reinserted = int(await conn.fetchval(SQL["undo_retirements"], feed, rollback_id))
    await conn.execute(SQL["fill_rollback_cases"], run_id)
    inserted_cases = [r["case_number"] for r in await conn.fetch(SQL["rollback_inserted_cases"])]
    undo.deleted += await retire_cases(conn, rollback_id, feed, inserted_cases)
    undo.reverted += int(await conn.fetchval(SQL["undo_case_updates"], feed, rollback_id))
    undo.reinserted += int(await conn.fetchval(SQL["undo_case_retirements"], feed,
                                               rollback_id))
    await conn.execute(SQL["plan_rollback_checkpoints"], run_id, feed, rollback_id)
    undo.checkpoints = int(await conn.fetchval(SQL["drop_rollback_checkpoints"], feed))
    undo.checkpoints += int(await conn.fetchval(SQL["restore_rollback_checkpoints"], feed))
    status = await conn.fetchrow(SQL["run_to_roll_back"], run_id)
    assert status is not None
    if status["phase"] != "done":  # its staging would resume it
        await clear_run_staging(conn, run_id)
    undo.zoning_changes = int((await conn.execute(
        SQL["mark_zoning_changes_rolled_back"], run_id, rollback_id)).split()[-1])
    await conn.execute(SQL["mark_run_rolled_back"], run_id)
    return undo


async def _refuse(db_url: str, run_id: int, message: str) -> RollbackRefused:
    async with connection(db_url) as conn:
        await record_action(conn, "rollback", f"run {run_id}", outcome="refused",
                            detail=message)
    return RollbackRefused(message)
