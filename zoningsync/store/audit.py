"""The audit log of admin commands: who asked what, from where, and what came of it.

The database fills in when, the client address (`inet_client_addr()`) and the
session's user; the command sends the operating-system user and host it runs
on, which the database cannot see. Every text is redacted before it is stored:
a reason typed by an operator may hold a pasted URL with its token.
"""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any

from zoningsync.redact import redact
from zoningsync.sql import queries
from zoningsync.store.connect import Conn
from zoningsync.store.runs import record_as_dict

SQL = queries("audit.sql")


def os_user() -> str | None:
    """The operating-system user, or None where the process has no user name (containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or None


async def record_action(conn: Conn, action: str, target: str, *, outcome: str, detail: str,
                        reason: str | None = None, run_id: int | None = None) -> int:
    """Append one action to the log (in the caller's transaction, if any); its id."""
    return int(await conn.fetchval(
        SQL["record_action"], action, target, redact(reason) if reason is not None else None,
        outcome, redact(detail), os_user(), socket.gethostname(), run_id))


async def list_actions(conn: Conn, target: str | None, limit: int) -> list[dict[str, Any]]:
    return [record_as_dict(r) for r in await conn.fetch(SQL["list_actions"], target, limit)]
