"""Load and validate jurisdiction source files (`sources/*.toml`).

A source file describes one jurisdiction and its feeds. Everything is checked at
load time: an unknown key, a wrong type or an impossible value raises
`SourceConfigError` naming the file, the key and the fix, so a typo never turns
into a silent default at 3 a.m.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from zoningsync.errors import SourceConfigError
from zoningsync.records import CANONICAL_FIELDS, Kind

SOURCE_TYPES = ("arcgis",)
INCREMENTAL_MODES = ("auto", "on", "off")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
EVERY_PATTERN = re.compile(r"^every\s+(\d+)\s*(s|m|h|d)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))

Incremental = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class RateLimit:
    requests_per_second: float = 2.0
    burst: int = 4


@dataclass(frozen=True)
class Schedule:
    """Either a fixed interval ("every 6h") or a five-field cron expression."""

    text: str
    interval_s: int | None


@dataclass(frozen=True)
class FeedConfig:
    jurisdiction: str
    jurisdiction_name: str
    id: str
    kind: Kind
    type: str
    url: str
    key: tuple[str, ...]
    schedule: Schedule
    rate_limit: RateLimit
    fields: Mapping[str, str]
    source_file: Path
    where: str = "1=1"
    page_size: int = 2000
    h3_resolution: int = 7
    token_env: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 8
    incremental: Incremental = "auto"
    full_refresh_every: int = 24
    max_retire_fraction: float = 0.2

    @property
    def full_id(self) -> str:
        """The feed's id across jurisdictions: `jurisdiction/feed`."""
        return f"{self.jurisdiction}/{self.id}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class Jurisdiction:
    id: str
    name: str
    feeds: tuple[FeedConfig, ...]
    source_file: Path


class _Reader:
    """Reads typed values out of one TOML table, naming file and key on error."""

    def __init__(self, path: Path, table: Mapping[str, Any], prefix: str) -> None:
        self.path = path
        self.table = table
        self.prefix = prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> SourceConfigError:
        return SourceConfigError(f"{self.path}: {self.prefix}{key}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is required")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"must be {_type_names(kinds)}, not true/false")
        if not isinstance(value, kinds):
            raise self.fail(key, f"must be {_type_names(kinds)}, got {value!r}")
        return value

    def reject_unknown(self, allowed_extra: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.table) - self.used - set(allowed_extra))
        if unknown:
            valid = ", ".join(sorted(self.used | set(allowed_extra)))
            raise self.fail(unknown[0], f"unknown key; valid keys here are: {valid}")


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list",
             dict: "a table", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_schedule(text: str) -> Schedule:
    """Accept `every <n><s|m|h|d>` or a five-field cron expression; raise ValueError."""
    stripped = text.strip()
    if match := EVERY_PATTERN.match(stripped):
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        if seconds < 60:
            raise ValueError("an interval must be at least 1 minute")
        return Schedule(stripped, seconds)
    fields = stripped.split()
    if len(fields) != 5:
        raise ValueError("use 'every 6h' or a five-field cron expression like '0 3 * * *'")
    for value, (low, high) in zip(fields, CRON_RANGES, strict=True):
        _check_cron_field(value, low, high)
    return Schedule(stripped, None)


def _check_cron_field(value: str, low: int, high: int) -> None:
    for part in value.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"bad step in cron field '{value}'")
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            raise ValueError(f"bad cron field '{value}'")
        numbers = [int(b) for b in bounds]
        if any(n < low or n > high for n in numbers) or numbers != sorted(numbers):
            raise ValueError(f"cron field '{value}' must lie in {low}-{high}")


def load_source_file(path: Path) -> Jurisdiction:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
    except OSError as exc:
        raise SourceConfigError(f"{path}: cannot read ({exc.strerror})") from exc

    top = _Reader(path, data, "")
    jur_table = top.get("jurisdiction", dict)
    feeds_raw = top.get("feeds", list)
    top.reject_unknown()

    jur = _Reader(path, jur_table, "jurisdiction.")
    jid = jur.get("id", str)
    if not ID_PATTERN.match(jid):
        raise jur.fail("id", f"'{jid}' must be lowercase letters, digits, '-' or '_'")
    name = jur.get("name", str, jid)
    jur.reject_unknown()
    if not feeds_raw:
        raise top.fail("feeds", "needs at least one [[feeds]] table")

    feeds: list[FeedConfig] = []
    for index, table in enumerate(feeds_raw):
        if not isinstance(table, dict):
            raise top.fail(f"feeds[{index}]", "must be a [[feeds]] table")
        feeds.append(_load_feed(path, jid, name, index, table))
    ids = [f.id for f in feeds]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise top.fail("feeds", f"feed id '{dup}' appears twice; feed ids must be unique")
    return Jurisdiction(jid, name, tuple(feeds), path)


def _load_feed(path: Path, jid: str, jname: str, index: int, table: Mapping[str, Any]
               ) -> FeedConfig:
    r = _Reader(path, table, f"feeds[{index}].")
    fid = r.get("id", str)
    if not ID_PATTERN.match(fid):
        raise r.fail("id", f"'{fid}' must be lowercase letters, digits, '-' or '_'")
    r.prefix = f"feeds.{fid}."

    kind_raw = r.get("kind", str)
    try:
        kind = Kind(kind_raw)
    except ValueError:
        raise r.fail("kind", f"'{kind_raw}' is not one of {', '.join(k.value for k in Kind)}"
                     ) from None
    source_type = r.get("type", str)
    if source_type not in SOURCE_TYPES:
        raise r.fail("type", f"'{source_type}' is not supported; use one of {SOURCE_TYPES}")
    url = r.get("url", str)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise r.fail("url", f"'{url}' must be an http(s) URL of the layer")

    key_raw = r.get("key", (str, list))
    key = (key_raw,) if isinstance(key_raw, str) else tuple(key_raw)
    if not key or not all(isinstance(k, str) and k for k in key):
        raise r.fail("key", "must name one upstream field or a list of them")

    schedule_text = r.get("schedule", str, "every 6h")
    try:
        schedule = parse_schedule(schedule_text)
    except ValueError as exc:
        raise r.fail("schedule", f"'{schedule_text}': {exc}") from None

    rate_table = r.get("rate_limit", dict, {})
    rate = _Reader(path, rate_table, f"feeds.{fid}.rate_limit.")
    rps = float(rate.get("requests_per_second", (int, float), 2.0))
    burst = rate.get("burst", int, max(1, int(rps * 2)))
    rate.reject_unknown()
    if rps <= 0:
        raise rate.fail("requests_per_second", "must be greater than 0")
    if burst < 1:
        raise rate.fail("burst", "must be at least 1")

    fields_table = r.get("fields", dict, {})
    for canonical, upstream in fields_table.items():
        if canonical not in CANONICAL_FIELDS:
            raise SourceConfigError(
                f"{path}: feeds.{fid}.fields.{canonical}: unknown canonical column; "
                f"use {', '.join(CANONICAL_FIELDS)} (other upstream fields land in attrs)"
            )
        if not isinstance(upstream, str) or not upstream:
            raise SourceConfigError(
                f"{path}: feeds.{fid}.fields.{canonical}: must name an upstream field"
            )

    where = r.get("where", str, "1=1").strip() or "1=1"
    page_size = r.get("page_size", int, 2000)
    if not 1 <= page_size <= 100_000:
        raise r.fail("page_size", f"{page_size} must lie between 1 and 100000")
    h3_resolution = r.get("h3_resolution", int, 7)
    if not 0 <= h3_resolution <= 15:
        raise r.fail("h3_resolution", f"{h3_resolution} must lie between 0 and 15")
    token_env = r.get("token_env", str, None)
    if token_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", token_env):
        raise r.fail("token_env", f"'{token_env}' must be an environment variable name")
    timeout_s = float(r.get("timeout_s", (int, float), 60.0))
    if timeout_s <= 0:
        raise r.fail("timeout_s", "must be greater than 0")
    max_retries = r.get("max_retries", int, 8)
    if not 0 <= max_retries <= 50:
        raise r.fail("max_retries", f"{max_retries} must lie between 0 and 50")
    incremental = r.get("incremental", str, "auto")
    if incremental not in INCREMENTAL_MODES:
        raise r.fail("incremental", f"'{incremental}' must be one of auto, on, off")
    full_refresh_every = r.get("full_refresh_every", int, 24)
    if full_refresh_every < 1:
        raise r.fail("full_refresh_every", "must be at least 1 (runs between full refreshes)")
    max_retire_fraction = float(r.get("max_retire_fraction", (int, float), 0.2))
    if not 0.0 <= max_retire_fraction <= 1.0:  # NaN fails this too
        raise r.fail("max_retire_fraction",
                     f"{max_retire_fraction} must be a number from 0 to 1 (share of stored "
                     "features one run may retire)")
    r.reject_unknown()

    return FeedConfig(
        jurisdiction=jid,
        jurisdiction_name=jname,
        id=fid,
        kind=kind,
        type=source_type,
        url=url.rstrip("/"),
        key=key,
        schedule=schedule,
        rate_limit=RateLimit(rps, burst),
        fields=dict(fields_table),
        source_file=path,
        where=where,
        page_size=page_size,
        h3_resolution=h3_resolution,
        token_env=token_env,
        timeout_s=timeout_s,
        max_retries=max_retries,
        incremental=incremental,
        full_refresh_every=full_refresh_every,
        max_retire_fraction=max_retire_fraction,
    )


def load_sources(directory: Path) -> list[Jurisdiction]:
    """Load every `*.toml` in `directory`; jurisdiction ids must be unique."""
    if not directory.is_dir():
        raise SourceConfigError(
            f"{directory}: sources directory not found; pass --sources DIR or set "
            "ZONINGSYNC_SOURCES"
        )
    jurisdictions = [load_source_file(p) for p in sorted(directory.glob("*.toml"))]
    seen: dict[str, Path] = {}
    for j in jurisdictions:
        if j.id in seen:
            raise SourceConfigError(
                f"{j.source_file}: jurisdiction.id '{j.id}' is already used by "
                f"{seen[j.id]}; give each jurisdiction its own id"
            )
        seen[j.id] = j.source_file
    return jurisdictions


def select_feeds(jurisdictions: list[Jurisdiction], target: str) -> list[FeedConfig]:
    """Resolve `JURISDICTION[/FEED]` to the feeds it names."""
    jid, _, fid = target.partition("/")
    for j in jurisdictions:
        if j.id != jid:
            continue
        if not fid:
            return list(j.feeds)
        for feed in j.feeds:
            if feed.id == fid:
                return [feed]
        raise SourceConfigError(
            f"{j.source_file}: jurisdiction '{jid}' has no feed '{fid}'; "
            f"its feeds are {', '.join(f.id for f in j.feeds)}"
        )
    known = ", ".join(j.id for j in jurisdictions) or "none"
    raise SourceConfigError(f"unknown jurisdiction '{jid}'; known jurisdictions: {known}")
