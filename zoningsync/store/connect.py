"""Opening PostgreSQL connections, with library errors turned into one-line messages.

asyncpg raises a dozen exception types for "cannot reach the database"; callers
only need to know that it failed and what to do about it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
import orjson

from zoningsync.errors import DatabaseUnreachable
from zoningsync.records import JsonText
from zoningsync.settings import redact_url

# Our statements are short and many: JIT compilation cost 60 ms per merge batch and
# saved nothing (measured with EXPLAIN ANALYZE).
SERVER_SETTINGS = {"application_name": "zoningsync", "jit": "off"}
# A connection of our own or one borrowed from a pool: store functions take either.
Conn: TypeAlias = "asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"
JSONB_VERSION = b"\x01"  # jsonb binary format: a version byte, then JSON text


def _encode_jsonb(value: Any) -> bytes:
    if isinstance(value, JsonText):
        return JSONB_VERSION + value
    return JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    """jsonb travels as orjson in the binary protocol: exact numbers, fast, COPY-able."""
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog",
        format="binary",
    )


def _unreachable(url: str, exc: BaseException) -> DatabaseUnreachable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnreachable(
        f"cannot connect to {redact_url(url)}: {reason}; check the database URL "
        "(--database-url / ZONINGSYNC_DATABASE_URL) and that the server is running"
    )


_CONNECT_ERRORS = (
    OSError,
    socket.gaierror,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ValueError,
)


async def connect(url: str, *, connect_timeout: float = 15.0,
                  application_name: str | None = None) -> asyncpg.Connection[Any]:
    """A connection with zoningsync's codecs; `application_name` names it in pg_stat_activity."""
    settings = (SERVER_SETTINGS if application_name is None
                else {**SERVER_SETTINGS, "application_name": application_name})
    try:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            url, timeout=connect_timeout, server_settings=settings
        )
    except _CONNECT_ERRORS as exc:
        raise _unreachable(url, exc) from exc
    await _init_connection(conn)
    return conn


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4
                      ) -> asyncpg.Pool[Any]:
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            server_settings=SERVER_SETTINGS,
        )
    except _CONNECT_ERRORS as exc:
        raise _unreachable(url, exc) from exc
    assert pool is not None
    return pool
