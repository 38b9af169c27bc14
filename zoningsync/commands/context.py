"""What every command shares: the settings, the event loop, JSON answers.

Commands import these from here, never from `cli.py`: the CLI imports the
commands, so nothing may import the CLI back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
import orjson

from zoningsync.settings import Settings

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode())
