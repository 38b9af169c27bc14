"""SQL queries kept as SQL files, each under a `-- name: <query_name>` header.

PostGIS SQL reads and reviews best as SQL, not as Python strings; this loader
turns a file into a mapping of name -> statement once, at import time of the
module that uses it.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def queries(filename: str) -> dict[str, str]:
    """Parse `zoningsync/sql/<filename>` into {name: sql}; names must be unique."""
    text = resources.files(__name__).joinpath(filename).read_text("utf-8")
    parts = _HEADER.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"{filename}: query '{name}' is defined twice")
        found[name] = body.strip()
    return found
