"""Feed leases: at most one process syncs a feed at a time, across hosts.

The lease is a session advisory lock held on a connection of its own for the
whole run. PostgreSQL drops it the moment that connection dies, so a rerun right
after `kill -9` proceeds at once: no lease row to expire, no timeout to wait.
The lease connection carries `zoningsync <node>` as its application_name (the
node is the host and pid, or the daemon's ZONINGSYNC_NODE), so a process
refused the lease can say who holds it and `status` can say where a feed runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from zoningsync.errors import FeedBusy
from zoningsync.sql import queries
from zoningsync.store.connect import Conn, connect

SQL = queries("lease.sql")
LEASE_NAMESPACE = 0x7A73  # first advisory-lock key: "zs"
# PostgreSQL keeps 63 bytes of an application_name.
APPLICATION_NAME_BYTES = 63


APPLICATION_PREFIX = "zoningsync "
_node: str | None = None


def default_node() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def use_node_name(name: str) -> str:
    """Name this process in leases and claims (the daemon's node); returns the name kept.

    The name is cut so that `zoningsync <node>` fits an application_name.
    """
    global _node
    room = APPLICATION_NAME_BYTES - len(APPLICATION_PREFIX)
    _node = name.encode()[:room].decode(errors="ignore")
    return _node


def node_name() -> str:
    """This process's node: the name given to `use_node_name`, else `<host>:<pid>`."""
    return _node if _node is not None else use_node_name(default_node())


def holder_name() -> str:
    """`zoningsync <node>`: who this process is, as other processes will see it."""
    return APPLICATION_PREFIX + node_name()


@asynccontextmanager
async def feed_lease(url: str, feed_id: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """Hold the feed's lease; raise FeedBusy, naming the holder, if another process holds it."""
    conn = await connect(url, application_name=holder_name())
    try:
        if not await conn.fetchval(SQL["try_lease"], LEASE_NAMESPACE, feed_id):
            raise FeedBusy(await _busy_message(conn, feed_id))
        yield conn
    finally:
        await conn.close()


async def lease_holder(conn: Conn, feed_id: str) -> asyncpg.Record | None:
    """The session holding the feed's lease (pid, application_name, backend_start), if any."""
    return await conn.fetchrow(SQL["lease_holder"], LEASE_NAMESPACE, feed_id)


async def _busy_message(conn: asyncpg.Connection[Any], feed_id: str) -> str:
    holder = await lease_holder(conn, feed_id)
    if holder is None:  # it let go between our two questions
        who = "another zoningsync process"
    else:
        name = holder["application_name"] or "a session without an application_name"
        since = (f" since {holder['backend_start']:%Y-%m-%d %H:%M:%S %Z}"
                 if holder["backend_start"] else "")
        who = f"{name} (database backend pid {holder['pid']}{since})"
    return (f"feed {feed_id} is being synced by {who}; wait for it to finish, "
            "or try again later")
