"""The metrics server as a side task: `/metrics` and `/healthz` until cancelled."""

from __future__ import annotations

import asyncio

import structlog

from zoningsync.errors import ZoningsyncError
from zoningsync.metrics import HealthCheck, serve

log = structlog.get_logger(__name__)


async def serve_metrics(host: str, port: int, health: HealthCheck,
                        listening: asyncio.Future[int]) -> None:
    """Serve until cancelled; `listening` gets the bound port once the socket is open."""
    try:
        server = serve(host, port, health)
        bound = await server.__aenter__()
    except OSError as exc:
        raise ZoningsyncError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); set --metrics "
            "(ZONINGSYNC_METRICS) to a free host:port, or off") from None
    try:
        log.info("metrics serving", address=f"{host}:{bound}", port=bound)
        listening.set_result(bound)
        await asyncio.Event().wait()
    finally:
        await server.__aexit__(None, None, None)
