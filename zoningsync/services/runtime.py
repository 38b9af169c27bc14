"""The parts every feed run of a process shares: sessions, the fetcher, the prepare pool.

`zoningsync sync` and the daemon build them the same way, here: one thread pool
for page preparation and big answers (so the loop never decodes), one fetcher
whose per-host buckets and breakers all runs obey, and one connection pool
sized by the caller for the runs it will hold at once.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from zoningsync.http import Fetcher
from zoningsync.store.connect import create_pool
from zoningsync.sync import PREPARE_MODULE, PREPARE_WORKERS

# A run's own session, one per staging worker, one storing a first load's pages.
SESSIONS_PER_RUN = PREPARE_WORKERS + 2


@dataclass(frozen=True)
class SyncRuntime:
    db_url: str
    pool: asyncpg.Pool[Any]
    fetcher: Fetcher
    executor: Executor


@asynccontextmanager
async def sync_runtime(db_url: str, *, pool_size: int) -> AsyncIterator[SyncRuntime]:
    """The shared parts, closed in reverse order on the way out.

    The pool's first task imports the preparing stage (numpy, shapely, h3,
    pyproj), while the sessions connect and the first run plans.
    """
    with ThreadPoolExecutor(max_workers=PREPARE_WORKERS,
                            thread_name_prefix="zoningsync-prepare") as executor:
        executor.submit(importlib.import_module, PREPARE_MODULE)
        pool = await create_pool(db_url, max_size=pool_size)
        try:
            async with Fetcher(decode_executor=executor) as fetcher:
                yield SyncRuntime(db_url, pool, fetcher, executor)
        finally:
            await pool.close()
