"""Typed, bounded reads of one TOML table, where every problem names file, key and fix.

Source files are written by hand and read unattended for months: a value that is
the wrong type, out of range, not finite, too long or carrying a secret must be
refused at load with a line an operator can act on. Every reader of a source
file's tables (the feed options here, the case feeds' in `cases/options.py`)
uses this one class, so the same value is refused the same way everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoningsync.redact import redact

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 200
MAX_URL_CHARS = 2048
# A value echoed in a message is cut to this many characters.
MAX_ECHO_CHARS = 60
MAX_ECHO_URL_CHARS = 200
# Control characters break log lines and terminals; tabs and newlines are layout.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def echo(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """A value as a message may quote it: redacted, on one line, at most `limit` long."""
    text = redact(repr(value) if not isinstance(value, str) else value)
    text = CONTROL_CHARS.sub("?", text).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def _range_text(low: float, high: float, low_open: bool) -> str:
    return (f"greater than {low:g} and at most {high:g}" if low_open
            else f"from {low:g} to {high:g}")


class TableReader:
    """Reads typed, bounded values out of one TOML table and records every problem.

    A reader does not raise on a bad value: it records the problem (file, key and
    fix in one line) in `problems`, shared with the readers of nested tables, and
    returns the default, or a placeholder when the key is required (default
    None). One pass over a file so finds every mistake in it; whoever builds a
    config from a reader must refuse it when `problems` is not empty, so a
    placeholder never reaches a config. Other option modules (the case feeds')
    read their tables with it, so every number and URL is bounded the same way.
    """

    def __init__(self, path: Path, table: Mapping[str, Any], prefix: str = "",
                 problems: list[str] | None = None) -> None:
        self.path = path
        self.table = table
        self.prefix = prefix
        self.problems: list[str] = [] if problems is None else problems
        self.used: set[str] = set()

    def problem(self, key: str, text: str) -> None:
        self.problems.append(redact(f"{self.path}: {self.prefix}{key}: {text}"))

    def sub(self, key: str) -> TableReader:
        """A reader of the nested table `key` (empty when absent), sharing the problems."""
        table = self.get(key, dict, "a table", {})
        return TableReader(self.path, table, f"{self.prefix}{key}.", self.problems)

    def get(self, key: str, kinds: type | tuple[type, ...], what: str, default: Any) -> Any:
        """The raw value of `key` if it has one of `kinds` (described by `what`).

        Absent, or of another type: `default`, with the problem recorded when the
        value is wrong or when it is missing and required (default None).
        """
        self.used.add(key)
        if key not in self.table:
            if default is None:
                self.problem(key, "is required")
            return default
        value = self.table[key]
        if isinstance(value, bool) and kinds is not bool:
            self.problem(key, f"must be {what}, not true/false")
            return default
        if not isinstance(value, kinds):
            shown = echo(repr(value) if isinstance(value, str) else value)
            self.problem(key, f"must be {what}, got {shown}")
            return default
        return value

    def get_int(self, key: str, low: int, high: int, default: int | None = None) -> int:
        """An integer in [low, high]; true/false, floats and out-of-range values refused."""
        fallback = low if default is None else default
        value = self.get(key, int, f"an integer from {low} to {high}", default)
        if value is None:
            return fallback
        if not low <= value <= high:
            self.problem(key, f"{echo(value)} is out of range; use an integer from "
                              f"{low} to {high}")
            return fallback
        return int(value)

    def get_float(self, key: str, low: float, high: float, default: float | None = None,
                  *, low_open: bool = False) -> float:
        """A finite number in [low, high] (or (low, high]); nan, inf and bools refused."""
        fallback = high if default is None else default
        allowed = _range_text(low, high, low_open)
        value = self.get(key, (int, float), f"a number {allowed}", default)
        if value is None:
            return fallback
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(key, f"{echo(value)} is not a finite number; use a number {allowed}")
            return fallback
        # Compared before float(): an integer beyond 1e308 has no float to become.
        if value < low or value > high or (low_open and value == low):
            self.problem(key, f"{echo(value)} is out of range; use a number {allowed}")
            return fallback
        return float(value)

    def get_str(self, key: str, default: str | None = None, *,
                max_chars: int = MAX_TEXT_CHARS) -> str:
        """A string of at most `max_chars` without control characters."""
        value = self.get(key, str, "a string", default)
        if value is None:
            return ""
        if len(value) > max_chars:
            self.problem(key, f"is {len(value)} characters long; at most {max_chars} "
                              "are allowed")
            return default or ""
        if CONTROL_CHARS.search(value):
            self.problem(key, "contains control characters; remove them")
            return default or ""
        return str(value)

    def get_choice(self, key: str, choices: tuple[str, ...], default: str | None = None
                   ) -> str:
        """One of `choices`; the first is the placeholder after a problem."""
        known = len(self.problems)
        value = self.get_str(key, default)
        if value in choices:
            return value
        if len(self.problems) == known:
            self.problem(key, f"'{echo(value)}' is not one of {', '.join(choices)}")
        return default or choices[0]

    def get_id(self, key: str) -> str:
        """A required id: lowercase letters, digits, '-' and '_', at most 64 characters."""
        value = self.get_str(key, max_chars=MAX_ID_CHARS)
        if value and not ID_PATTERN.match(value):
            self.problem(key, f"'{echo(value)}' must be lowercase letters, digits, '-' or '_'")
        return value

    def get_url(self, key: str, *, allow_query: bool = False) -> str:
        """A required http(s) URL without credentials, query string or fragment.

        Those three are where secrets hide (`?token=`, `user:password@`); a URL in a
        source file is stored in the database and shown in logs, so the secret goes
        into the environment variable that `token_env` names instead. With
        `allow_query` (case portals: `AgendaViewer.php?view_id=3`), a query string
        is accepted unless one of its parameters is secret-shaped.
        """
        url = self.get_str(key, max_chars=MAX_URL_CHARS)
        if not url:
            return url
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = urlsplit(""), False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            shown = echo(url.split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1],
                         MAX_ECHO_URL_CHARS)
            self.problem(key, f"'{shown}' must be an http(s) URL of the layer, like "
                              "https://host/arcgis/rest/services/Name/FeatureServer/0")
            return url
        carried = [what for what, present in (
            ("a user name or password", "@" in parts.netloc),
            ("a query string", "?" in url and not (allow_query and redact(url) == url)),
            ("a fragment", "#" in url),
        ) if present]
        if re.search(r"\s", url):
            carried.append("spaces")
        if carried:
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            shown = echo(f"{parts.scheme}://{host}{parts.path}", MAX_ECHO_URL_CHARS)
            self.problem(key, f"'{shown}' must not carry {' or '.join(carried)}; give the "
                              "layer's plain URL, and put an access token in an environment "
                              "variable named by token_env")
        return url

    def get_list(self, key: str) -> list[Any]:
        """A required array (of tables, for `[[feeds]]`)."""
        return list(self.get(key, list, "a list", None) or [])

    def reject_unknown(self, allowed_extra: tuple[str, ...] = ()) -> None:
        """Record every key nobody read: a typo must not become a silent default.

        `allowed_extra` names keys another module reads from the same table (a feed
        kind's own options), so the two readers can share one feed table.
        """
        valid = ", ".join(sorted(self.used | set(allowed_extra)))
        for unknown in sorted(set(self.table) - self.used - set(allowed_extra)):
            self.problem(echo(unknown), f"unknown key; valid keys here are: {valid}")
