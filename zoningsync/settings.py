"""Process-wide settings: where the database is, where state lives.

Each setting comes from, in order of precedence: the command line, an environment
variable (`ZONINGSYNC_<KEY>`), the settings file (`--config`, `ZONINGSYNC_CONFIG`
or `/etc/zoningsync/zoningsync.toml`), then a default. Invalid values raise
`SettingsError` naming the key, where it came from and how to fix it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoningsync.errors import SettingsError
from zoningsync.redact import redact

SYSTEM_CONFIG = Path("/etc/zoningsync/zoningsync.toml")
SYSTEM_STATE_DIR = Path("/var/lib/zoningsync")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Long enough for any path or URL in use; a settings file is a few lines.
MAX_VALUE_CHARS = 4096
MAX_FILE_BYTES = 100_000
# What useradd accepts everywhere; anything else (a leading '-') would be an option.
CLUSTER_USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# key -> one-line description, used in error messages and `--help`.
KEYS: dict[str, str] = {
    "database_url": "libpq URL of the PostGIS database; empty means the embedded cluster",
    "state_dir": "directory for the embedded cluster and local state",
    "sources": "directory of jurisdiction TOML files",
    "cluster_user": "OS user that runs the embedded cluster when zoningsync runs as root",
    "log_level": "one of debug, info, warning, error",
}
# The [webhooks] table: its keys, described likewise.
WEBHOOKS_KEYS: dict[str, str] = {
    "listen": "host:port of the webhook receiver, such as 127.0.0.1:9465, or off",
}
WEBHOOKS_ENV = "ZONINGSYNC_WEBHOOKS"


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    state_dir: Path
    sources: Path
    cluster_user: str
    log_level: str
    config_file: Path | None
    # The receiver's address text as given (parsed by `run`), and where it was given.
    webhooks_listen: str | None = None
    webhooks_origin: str = "default"


def env_var(key: str) -> str:
    return f"ZONINGSYNC_{key.upper()}"


def default_state_dir() -> Path:
    """A system service keeps state in /var/lib; a person keeps it in their XDG data dir.

    systemd's `StateDirectory=` exports `STATE_DIRECTORY`; root without it is still
    a system install (and /root is not reachable by the unprivileged cluster user).
    """
    if systemd_dir := os.environ.get("STATE_DIRECTORY"):
        return Path(systemd_dir.split(":")[0])
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "zoningsync"


def _read_config_file(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise SettingsError(f"{path}: settings file not found; fix the --config path")
        return {}
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SettingsError(f"{path}: over {MAX_FILE_BYTES} bytes; a settings file holds "
                                f"a few keys ({', '.join(KEYS)})")
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(redact(f"{path}: not valid TOML ({exc}); fix the syntax")) from None
    except (UnicodeDecodeError, RecursionError):
        raise SettingsError(f"{path}: not a readable TOML text; save it as UTF-8 with "
                            f"plain string values ({', '.join(KEYS)})") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file ({exc.strerror})") from None
    unknown = sorted(set(data) - set(KEYS) - {"webhooks"})
    if unknown:
        raise SettingsError(
            f"{path}: unknown key '{unknown[0]}'; valid keys are {', '.join(KEYS)} "
            "and the [webhooks] table"
        )
    if "webhooks" in data:
        data = {**data, "webhooks": _webhooks_table(path, data["webhooks"])}
    for key, value in data.items():
        if key != "webhooks" and not isinstance(value, str):
            raise SettingsError(f"{path}: key '{key}' must be a string ({KEYS[key]})")
    return data


def _webhooks_table(path: Path, table: object) -> dict[str, str]:
    """`[webhooks]`: a table of string keys, each one of WEBHOOKS_KEYS."""
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: key 'webhooks' must be a table: [webhooks] then "
                            f"listen = \"127.0.0.1:9465\"")
    for key, value in table.items():
        if key not in WEBHOOKS_KEYS:
            raise SettingsError(f"{path}: unknown key 'webhooks.{key}'; valid keys are "
                                f"{', '.join(WEBHOOKS_KEYS)}")
        if not isinstance(value, str):
            raise SettingsError(f"{path}: key 'webhooks.{key}' must be a string "
                                f"({WEBHOOKS_KEYS[key]})")
    return table


def load_settings(
    overrides: dict[str, str | None] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Resolve settings from command-line overrides, environment and settings file."""
    overrides = overrides or {}
    explicit = config_file or os.environ.get("ZONINGSYNC_CONFIG")
    path = Path(explicit) if explicit else SYSTEM_CONFIG
    file_values = _read_config_file(path, explicit=bool(explicit))

    def pick(key: str) -> tuple[str | None, str]:
        if overrides.get(key) is not None:
            return _plain(key, overrides[key], f"--{key.replace('_', '-')}")
        if env_var(key) in os.environ:
            return _plain(key, os.environ[env_var(key)], env_var(key))
        if key in file_values:
            return _plain(key, file_values[key], f"{path}: {key}")
        return None, "default"

    database_url, origin = pick("database_url")
    if database_url is not None:
        database_url = database_url.strip() or None
    if database_url is not None and not _is_libpq_url(database_url):
        raise SettingsError(redact(
            f"{origin}: database_url '{database_url}' is not a libpq URL; "
            "use postgresql://user@host:port/dbname or postgresql:///dbname?host=/run/postgresql"
        ))

    state_raw, origin = pick("state_dir")
    state_dir = Path(state_raw).expanduser() if state_raw else default_state_dir()
    if not state_dir.is_absolute():
        state_dir = state_dir.resolve()

    sources_raw, _ = pick("sources")
    sources = Path(sources_raw).expanduser() if sources_raw else Path("sources")

    cluster_user, origin = pick("cluster_user")
    if cluster_user and not CLUSTER_USER_PATTERN.match(cluster_user):
        raise SettingsError(
            f"{origin}: cluster_user '{cluster_user}' is not a usable OS user name; use "
            "lowercase letters, digits, '_' or '-' (not first), at most 32, like zoningsync"
        )
    log_level, origin = pick("log_level")
    level = (log_level or "info").lower()
    if level not in LOG_LEVELS:
        raise SettingsError(
            f"{origin}: log_level '{log_level}' is invalid; use one of {', '.join(LOG_LEVELS)}"
        )
    webhooks_listen, webhooks_origin = _webhooks_listen(path, file_values)
    return Settings(
        database_url=database_url,
        state_dir=state_dir,
        sources=sources,
        cluster_user=cluster_user or "zoningsync",
        log_level=level,
        config_file=path if path.exists() else None,
        webhooks_listen=webhooks_listen,
        webhooks_origin=webhooks_origin,
    )


def _webhooks_listen(path: Path, file_values: dict[str, Any]) -> tuple[str | None, str]:
    """The receiver's address from the environment, else `[webhooks] listen`; its origin."""
    if WEBHOOKS_ENV in os.environ:
        value, origin = os.environ[WEBHOOKS_ENV], WEBHOOKS_ENV
    elif "listen" in file_values.get("webhooks", {}):
        value, origin = file_values["webhooks"]["listen"], f"{path}: [webhooks] listen"
    else:
        return None, "default"
    if len(value) > MAX_VALUE_CHARS or _CONTROL.search(value):
        raise SettingsError(f"{origin}: the value is not one short line; give host:port "
                            f"({WEBHOOKS_KEYS['listen']})")
    return value, origin


def _plain(key: str, value: str | None, origin: str) -> tuple[str | None, str]:
    """`value` if it is one plain line of sane length: a NUL in a path crashes later."""
    if value is not None and (len(value) > MAX_VALUE_CHARS or _CONTROL.search(value)):
        raise SettingsError(
            f"{origin}: the value is "
            f"{'too long' if len(value) > MAX_VALUE_CHARS else 'not one line'}"
            f"; give one line of at most {MAX_VALUE_CHARS} characters without control "
            f"characters ({KEYS[key]})"
        )
    return value, origin


def _is_libpq_url(url: str) -> bool:
    """A postgresql: URL whose every host (libpq allows `h1:5432,h2:5433`) has a valid port."""
    if not url.startswith(("postgresql:", "postgres:")) or re.search(r"\s", url):
        return False
    try:
        hosts = urlsplit(url).netloc.rpartition("@")[2]
        return all(urlsplit(f"//{host}").port != 0 for host in hosts.split(","))
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """Hide a password in a URL before it reaches a message (the one redactor's job)."""
    return redact(url)

