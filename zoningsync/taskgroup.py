"""A task group that fails with its first task's own error.

asyncio.TaskGroup wraps what its tasks raise in an ExceptionGroup. A run's
error handling (a failed page, a breaker that opened, a merge batch refused)
catches the error itself, to fail the run cleanly and resumably; a group around
it would escape every handler and reach the user as a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        raise first_cause(failed) from None


def first_cause(failed: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error that is not a cancellation caused by another, depth first."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [failed]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending[:0] = list(error.exceptions)
        else:
            leaves.append(error)
    real = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
    return (real or leaves)[0]
