"""How admin commands answer: one line (or JSON) on stdout, or a refusal with exit 1.

A refusal is an answer, not a crash: with `--json` it is `{"ok": false, "error":
...}` on stdout, and always one line on stderr, redacted like every text out.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click

from zoningsync.commands.context import emit_json
from zoningsync.redact import redact

REFUSED = 1


def answer(data: dict[str, Any], line: str, *, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, **data})
    else:
        click.echo(redact(line))


def refuse(ctx: click.Context, message: str, *, as_json: bool,
           data: dict[str, Any] | None = None) -> NoReturn:
    text = redact(" ".join(message.split()))
    if as_json:
        emit_json({"ok": False, **(data or {}), "error": text})
    click.echo(f"zoningsync: refused: {text}", err=True)
    ctx.exit(REFUSED)
