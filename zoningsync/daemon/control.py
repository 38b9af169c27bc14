"""The control listener: LISTEN on `zoningsync_control` and wake the scheduler at once.

Admin commands (`pause`, `resume`, `sync --now`) change rows, then NOTIFY this
channel with `{"action": ..., "feed": ...}`; the rows are the truth, so the
listener only has to make the scheduler look again now rather than at its next
tick. A lost connection is opened again; until then the ticks still run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import structlog

from zoningsync.errors import describe_failure
from zoningsync.store.connect import connect
from zoningsync.store.lease import holder_name
from zoningsync.store.schedules import CONTROL_CHANNEL

log = structlog.get_logger(__name__)

CHECK_EVERY_S = 5.0
RECONNECT_AFTER_S = 2.0
MAX_PAYLOAD_CHARS = 8000


async def listen_for_control(db_url: str, wake: asyncio.Event) -> None:
    """Set `wake` on every control notification, for as long as the daemon runs."""
    while True:
        try:
            conn = await connect(db_url, application_name=holder_name())
        except Exception as exc:
            log.warning("control listener cannot connect; trying again",
                        error=describe_failure(exc))
            await asyncio.sleep(RECONNECT_AFTER_S)
            continue
        lost = asyncio.Event()

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
            log.info("control notification", **_describe(str(payload)))
            wake.set()

        def on_lost(_conn: Any, lost: asyncio.Event = lost) -> None:
            lost.set()

        try:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(CONTROL_CHANNEL, on_notify)
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), CHECK_EVERY_S)
                except TimeoutError:
                    await conn.fetchval("SELECT 1")  # notices a dead server
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("control listener lost its connection; opening another",
                        error=describe_failure(exc))
        finally:
            conn.terminate()
        await asyncio.sleep(RECONNECT_AFTER_S)


def _describe(payload: str) -> dict[str, Any]:
    """The notification's action and feed, for the log; anything else, as bounded text."""
    try:
        data = orjson.loads(payload[:MAX_PAYLOAD_CHARS])
    except orjson.JSONDecodeError:
        return {"payload": payload[:200]}
    if not isinstance(data, dict):
        return {"payload": payload[:200]}
    return {"action": str(data.get("action"))[:40], "feed": str(data.get("feed"))[:200]}
