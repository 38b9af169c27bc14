"""Load and validate jurisdiction source files (`sources/*.toml`).

A source file describes one jurisdiction and its feeds. Everything is checked at
load time: an unknown key, a wrong type, a number out of its range or a URL that
would leak a secret is refused with a message naming the file, the key and the
fix, so a typo never turns into a silent default (or a traceback) at 3 a.m.

A file is read in one pass that records every problem in it, and a broken file
costs only its own jurisdiction: `load_sources` returns the jurisdictions that
loaded beside the errors of the files that did not, so one bad file never stops
the sync of every other county.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from zoningsync.cases.options import CASE_KEYS, CaseOptions, parse_case_options
from zoningsync.errors import SourceConfigError
from zoningsync.records import CANONICAL_FIELDS, Kind
from zoningsync.redact import redact
from zoningsync.toml_table import (
    CONTROL_CHARS,
    ID_PATTERN,
    TableReader,
    echo,
)

SOURCE_TYPES = ("arcgis",)
# "on" is the name edit_date had before change tracking: read as edit_date.
INCREMENTAL_MODES = ("auto", "changes", "edit_date", "on", "off")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EVERY_PATTERN = re.compile(r"^every\s+([0-9]{1,9})\s*(s|m|h|d)$")
JITTER_PATTERN = re.compile(r"^([0-9]{1,9})\s*(s|m|h|d)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
CRON_NUMBER = re.compile(r"^[0-9]{1,2}$")

# Bounds on what a source file may hold: generous for any real county, small
# enough that no value can exhaust memory, overflow arithmetic or flood a log.
MAX_FILE_BYTES = 1_000_000
MAX_NAME_CHARS = 200
MAX_WHERE_CHARS = 8192
MAX_FIELD_CHARS = 128
MAX_KEY_FIELDS = 8
MAX_FEEDS = 100
MAX_SCHEDULE_CHARS = 100
MIN_INTERVAL_S = 30
MAX_INTERVAL_S = 366 * 86400

Incremental = Literal["auto", "changes", "edit_date", "off"]


@dataclass(frozen=True)
class RateLimit:
    requests_per_second: float = 2.0
    burst: int = 4


@dataclass(frozen=True)
class Schedule:
    """Either a fixed interval ("every 6h") or a five-field cron expression."""

    text: str
    interval_s: int | None
    # Most a run is started after its due time, spread per feed so daemons agree;
    # None: up to 10% of the interval, 0: no jitter.
    jitter_s: int | None = None


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
    webhook_secret_env: str | None = None
    full_refresh_every: int = 24
    max_retire_fraction: float = 0.2
    # A case feed's options (compiled), and the TOML they were read from (JSON-ready,
    # for the feeds row and the fingerprint).
    cases: CaseOptions | None = None
    case_settings: Mapping[str, Any] = field(default_factory=dict)

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


@dataclass(frozen=True)
class SourceError:
    """A source file that did not load, the jurisdiction it meant, and all its problems.

    `jurisdiction` is the file's `jurisdiction.id` when the TOML parses that far,
    else the file's stem, so `sync` can tell a user asking for it why it is missing.
    """

    file: Path
    jurisdiction: str
    messages: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line: the first problem, and how many more the file has."""
        more = len(self.messages) - 1
        if not more:
            return self.messages[0]
        return (f"{self.messages[0]} (and {more} more problem{'s' if more > 1 else ''} "
                "in this file: run `zoningsync sources check`)")


@dataclass(frozen=True)
class SourceSet:
    """What a sources directory holds: the jurisdictions that loaded, the files that did not."""

    directory: Path
    jurisdictions: tuple[Jurisdiction, ...]
    errors: tuple[SourceError, ...]


def parse_schedule(text: str) -> Schedule:
    """Accept `every <n><s|m|h|d>` or a five-field cron expression; raise ValueError."""
    stripped = text.strip()
    if len(stripped) > MAX_SCHEDULE_CHARS:
        raise ValueError(f"a schedule is at most {MAX_SCHEDULE_CHARS} characters")
    if match := EVERY_PATTERN.match(stripped):
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
            raise ValueError("an interval must lie between 30 seconds and 366 days")
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
        if step and (not CRON_NUMBER.match(step) or not 1 <= int(step) <= high):
            raise ValueError(f"bad step in cron field '{value}' (use 1 to {high})")
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(CRON_NUMBER.match(b) for b in bounds):
            raise ValueError(f"bad cron field '{value}'")
        numbers = [int(b) for b in bounds]
        if any(n < low or n > high for n in numbers) or numbers != sorted(numbers):
            raise ValueError(f"cron field '{value}' must lie in {low}-{high}")


def read_source_file(path: Path) -> Jurisdiction | SourceError:
    """One file's jurisdiction, or every problem that keeps it from loading."""
    problems: list[str] = []
    data = _read_toml(path, problems)
    meant = path.stem
    if data is None:
        return SourceError(path, meant, tuple(problems))

    top = TableReader(path, data, "", problems)
    jur = top.sub("jurisdiction")
    if isinstance(jur.table.get("id"), str):
        meant = jur.table["id"]
    jid = jur.get_id("id")
    name = jur.get_str("name", jid, max_chars=MAX_NAME_CHARS)
    jur.reject_unknown()

    feeds_raw = top.get_list("feeds")
    top.reject_unknown()
    if "feeds" in data and not feeds_raw and isinstance(data["feeds"], list):
        top.problem("feeds", "needs at least one [[feeds]] table")
    if len(feeds_raw) > MAX_FEEDS:
        top.problem("feeds", f"{len(feeds_raw)} feeds; a jurisdiction has at most {MAX_FEEDS}")
        feeds_raw = feeds_raw[:MAX_FEEDS]

    feeds: list[FeedConfig] = []
    for index, table in enumerate(feeds_raw):
        if not isinstance(table, dict):
            top.problem(f"feeds[{index}]", "must be a [[feeds]] table")
            continue
        feeds.append(_read_feed(TableReader(path, table, f"feeds[{index}].", problems),
                                jid, name))
    ids = [f.id for f in feeds]
    for dup in sorted({i for i in ids if i and ids.count(i) > 1}):
        top.problem("feeds", f"feed id '{dup}' appears twice; feed ids must be unique")
    if problems:
        return SourceError(path, meant, tuple(problems))
    return Jurisdiction(jid, name, tuple(feeds), path)


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        if not path.is_file():  # a FIFO or a device would block or never end
            problems.append(f"{path}: not a regular file; make it a plain TOML file")
            return None
        if (size := path.stat().st_size) > MAX_FILE_BYTES:
            problems.append(f"{path}: {size} bytes; a source file is at most "
                            f"{MAX_FILE_BYTES} bytes, split it or trim it")
            return None
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        problems.append(redact(f"{path}: not valid TOML ({exc}); fix the syntax"))
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text; save the file as UTF-8")
    except RecursionError:
        problems.append(f"{path}: nested too deeply to read; flatten its arrays and tables")
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
    return None


def _read_feed(r: TableReader, jid: str, jname: str) -> FeedConfig:
    fid = r.get_id("id")
    if fid and ID_PATTERN.match(fid):
        r.prefix = f"feeds.{fid}."

    kind = Kind(r.get_choice("kind", tuple(k.value for k in Kind)))
    if kind is Kind.CASES:
        return _read_case_feed(r, jid, jname, fid)
    source_type = r.get_choice("type", SOURCE_TYPES)
    url = r.get_url("url")
    key = _read_key(r)
    schedule, rate_limit = _read_schedule(r), _read_rate_limit(r)
    fields = _read_fields(r.sub("fields"))
    where = r.get_str("where", "1=1", max_chars=MAX_WHERE_CHARS).strip() or "1=1"
    page_size = r.get_int("page_size", 1, 100_000, 2000)
    h3_resolution = r.get_int("h3_resolution", 0, 15, 7)
    token_env = r.get_str("token_env", "", max_chars=MAX_FIELD_CHARS) or None
    if token_env is not None and not ENV_NAME_PATTERN.match(token_env):
        r.problem("token_env", f"'{echo(token_env)}' must be an environment variable name")
    timeout_s = r.get_float("timeout_s", 0, 3600, 60.0, low_open=True)
    max_retries = r.get_int("max_retries", 0, 50, 8)
    choice = r.get_choice("incremental", INCREMENTAL_MODES, "auto")
    incremental = cast(Incremental, "edit_date" if choice == "on" else choice)
    webhook_secret_env = r.get_str("webhook_secret_env", "", max_chars=MAX_FIELD_CHARS) or None
    if webhook_secret_env is not None and not ENV_NAME_PATTERN.match(webhook_secret_env):
        r.problem("webhook_secret_env", f"'{echo(webhook_secret_env)}' must be an environment "
                  "variable name (the secret itself goes in that variable, not in the file)")
    full_refresh_every = r.get_int("full_refresh_every", 1, 100_000, 24)
    max_retire_fraction = r.get_float("max_retire_fraction", 0, 1, 0.2)
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
        rate_limit=rate_limit,
        fields=fields,
        source_file=r.path,
        where=where,
        page_size=page_size,
        h3_resolution=h3_resolution,
        token_env=token_env,
        timeout_s=timeout_s,
        max_retries=max_retries,
        incremental=incremental,
        webhook_secret_env=webhook_secret_env,
        full_refresh_every=full_refresh_every,
        max_retire_fraction=max_retire_fraction,
    )


def _read_case_feed(r: TableReader, jid: str, jname: str, fid: str) -> FeedConfig:
    """A `kind = "cases"` feed: the shared keys here, the case keys in `cases.options`."""
    url = r.get_url("url", allow_query=True)
    schedule, rate_limit = _read_schedule(r), _read_rate_limit(r)
    timeout_s = r.get_float("timeout_s", 0, 3600, 60.0, low_open=True)
    max_retries = r.get_int("max_retries", 0, 50, 8)
    max_retire_fraction = r.get_float("max_retire_fraction", 0, 1, 0.2)
    options: CaseOptions | None = None
    consumed: frozenset[str] = CASE_KEYS
    try:
        options, consumed = parse_case_options(r.path, fid, r.table)
    except SourceConfigError as exc:
        r.problems.append(exc.message)
    r.reject_unknown(tuple(consumed))
    return FeedConfig(
        jurisdiction=jid,
        jurisdiction_name=jname,
        id=fid,
        kind=Kind.CASES,
        type=options.type if options is not None else "html",
        url=url,
        key=("case_number",),
        schedule=schedule,
        rate_limit=rate_limit,
        fields={},
        source_file=r.path,
        timeout_s=timeout_s,
        max_retries=max_retries,
        max_retire_fraction=max_retire_fraction,
        cases=options,
        case_settings={k: v for k, v in r.table.items() if k in consumed},
    )


def _read_schedule(r: TableReader) -> Schedule:
    text = r.get_str("schedule", "every 6h", max_chars=MAX_SCHEDULE_CHARS)
    jitter_text = r.get_str("jitter", "", max_chars=MAX_SCHEDULE_CHARS).strip()
    jitter_s: int | None = None
    if jitter_text:
        if match := JITTER_PATTERN.match(jitter_text):
            jitter_s = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        else:
            r.problem("jitter", f"'{echo(jitter_text)}' is not a duration; use a count and a "
                                "unit like '0s', '90s', '5m' or '1h'")
    try:
        return replace(parse_schedule(text), jitter_s=jitter_s)
    except ValueError as exc:
        r.problem("schedule", f"'{echo(text)}': {exc}")
        return Schedule(text, None)


def _read_rate_limit(r: TableReader) -> RateLimit:
    rate = r.sub("rate_limit")
    rps = rate.get_float("requests_per_second", 0, 1000, 2.0, low_open=True)
    burst = rate.get_int("burst", 1, 10_000, max(1, int(rps * 2)))
    rate.reject_unknown()
    return RateLimit(rps, burst)


def _read_key(r: TableReader) -> tuple[str, ...]:
    raw = r.get("key", (str, list), "an upstream field name or a list of them", None)
    names = [raw] if isinstance(raw, str) else list(raw or [])
    usable = all(isinstance(k, str) and k and len(k) <= MAX_FIELD_CHARS
                 and not CONTROL_CHARS.search(k) for k in names)
    if raw is not None and (not names or len(names) > MAX_KEY_FIELDS or not usable):
        r.problem("key", f"must name one upstream field or a list of at most "
                         f"{MAX_KEY_FIELDS}, each at most {MAX_FIELD_CHARS} characters")
    elif len(set(names)) != len(names):
        r.problem("key", "names a field twice; list each key field once")
    return tuple(str(k) for k in names)


def _read_fields(r: TableReader) -> dict[str, str]:
    fields: dict[str, str] = {}
    for canonical in r.table:
        if canonical not in CANONICAL_FIELDS:
            r.problem(echo(canonical), f"unknown canonical column; use "
                      f"{', '.join(CANONICAL_FIELDS)} (other upstream fields land in attrs)")
            continue
        known = len(r.problems)
        upstream = r.get_str(canonical, "", max_chars=MAX_FIELD_CHARS)
        if not upstream and len(r.problems) == known:
            r.problem(canonical, "must name an upstream field")
        fields[canonical] = upstream
    return fields


def load_source_file(path: Path) -> Jurisdiction:
    """One file's jurisdiction; its problems raise `SourceConfigError` (the first, counted)."""
    result = read_source_file(path)
    if isinstance(result, SourceError):
        raise SourceConfigError(result.summary)
    return result


def load_sources(directory: Path) -> SourceSet:
    """Every `*.toml` in `directory`: the jurisdictions that load, the errors of the rest.

    A jurisdiction id already defined by an earlier file (in name order) is an
    error of the later file, which is skipped. Only a missing directory raises.
    """
    if not directory.is_dir():
        raise SourceConfigError(
            f"{directory}: sources directory not found; pass --sources DIR or set "
            "ZONINGSYNC_SOURCES"
        )
    jurisdictions: list[Jurisdiction] = []
    errors: list[SourceError] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.toml")):
        result = read_source_file(path)
        if isinstance(result, SourceError):
            errors.append(result)
        elif result.id in seen:
            errors.append(SourceError(path, result.id, (
                f"{path}: jurisdiction.id '{result.id}' is already used by "
                f"{seen[result.id]}; give each jurisdiction its own id",)))
        else:
            seen[result.id] = path
            jurisdictions.append(result)
    return SourceSet(directory, tuple(jurisdictions), tuple(errors))


def select_feeds(sources: SourceSet, target: str) -> list[FeedConfig]:
    """Resolve `JURISDICTION[/FEED]` to the feeds it names.

    A target that only a broken file defines fails with that file's own error, so
    the user sees what to fix rather than "unknown jurisdiction".
    """
    jid, _, fid = target.partition("/")
    for j in sources.jurisdictions:
        if j.id != jid:
            continue
        if not fid:
            return list(j.feeds)
        for feed in j.feeds:
            if feed.id == fid:
                return [feed]
        raise SourceConfigError(
            f"{j.source_file}: jurisdiction '{echo(jid)}' has no feed '{echo(fid)}'; "
            f"its feeds are {', '.join(f.id for f in j.feeds)}"
        )
    for error in sources.errors:
        if error.jurisdiction == jid:
            raise SourceConfigError(error.summary)
    known = ", ".join(j.id for j in sources.jurisdictions) or "none"
    message = f"unknown jurisdiction '{echo(jid)}'; known jurisdictions: {known}"
    if sources.errors:
        failed = ", ".join(e.file.name for e in sources.errors)
        message += (f"; {len(sources.errors)} source file(s) failed to load ({failed}): "
                    "run `zoningsync sources check`")
    raise SourceConfigError(message)
