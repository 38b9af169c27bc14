"""A failing task fails its group with its own error, not an ExceptionGroup."""

from __future__ import annotations

import asyncio

import pytest

from zoningsync.errors import FetchError
from zoningsync.taskgroup import task_group


async def test_the_first_task_error_escapes_as_itself() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise FetchError("page 3: HTTP 503")

    with pytest.raises(FetchError, match="HTTP 503"):
        async with task_group() as group:
            group.create_task(fails())
            group.create_task(asyncio.sleep(10))


async def test_an_error_in_the_body_escapes_as_itself() -> None:
    with pytest.raises(KeyError):
        async with task_group() as group:
            group.create_task(asyncio.sleep(10))
            raise KeyError("body")
