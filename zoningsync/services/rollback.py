"""Exact rollback of a run (store/rollback.py), on the configured database."""

from __future__ import annotations

from zoningsync.database import ready_database
from zoningsync.settings import Settings
from zoningsync.store.rollback import RollbackResult, rollback


async def roll_back(settings: Settings, run_id: int, *, cascade: bool,
                    dry_run: bool) -> RollbackResult:
    """Undo the run (or, dry, say what would be undone); raises RollbackRefused."""
    url = await ready_database(settings)
    return await rollback(url, run_id, cascade=cascade, dry_run=dry_run)
