"""Finding the PostgreSQL server binaries (and PostGIS) the embedded cluster runs.

Distributions scatter them: Debian keeps every major version side by side in
/usr/lib/postgresql/<major>/bin, PGDG on RHEL in /usr/pgsql-<major>/bin, Homebrew
and source builds put them on PATH. `pg_config` knows a server's bindir, sharedir
and version, so it is asked first; a bindir without one still counts when
`postgres --version` answers. The newest server that also has PostGIS wins,
because a server without it cannot hold zoningsync's schema.

These are synchronous subprocess calls of a few milliseconds: async callers run
`find_binaries` in a thread.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zoningsync.errors import BinariesMissing

BINDIR_ENV = "ZONINGSYNC_PG_BINDIR"
MIN_MAJOR = 13
SERVER_TOOLS = ("pg_ctl", "initdb", "postgres")
PROBE_TIMEOUT_S = 10.0
INSTALL_SERVER = (
    "PostgreSQL server binaries not found; install them: "
    "apt-get install postgresql-15 postgresql-15-postgis-3"
)


@dataclass(frozen=True)
class PgBinaries:
    bindir: Path
    major: int
    sharedir: Path

    @property
    def has_postgis(self) -> bool:
        return (self.sharedir / "extension" / "postgis.control").exists()


def _ask(argv: Sequence[str]) -> list[str] | None:
    """Output lines of a probe command, or None when it cannot run or fails."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.splitlines() if done.returncode == 0 else None


def _major(version_line: str) -> int | None:
    """'PostgreSQL 15.18 (Debian ...)' or 'postgres (PostgreSQL) 16.2' -> the major."""
    match = re.search(r"PostgreSQL\)?\s+(\d+)", version_line)
    return int(match.group(1)) if match else None


def _pg_config_bindirs() -> list[Path]:
    """Bindirs named by every pg_config we can find (PATH, then Debian's per-major ones)."""
    configs: list[Path] = []
    if on_path := shutil.which("pg_config"):
        configs.append(Path(on_path))
    configs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_config"), reverse=True))
    found: list[Path] = []
    for config in configs:
        answer = _ask([str(config), "--bindir"])
        if answer:
            found.append(Path(answer[0].strip()))
    return found


def system_bindirs() -> list[Path]:
    """Directories that may hold a PostgreSQL server, most specific first."""
    candidates = [
        *_pg_config_bindirs(),
        *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
        *sorted(Path("/usr").glob("pgsql-*/bin"), reverse=True),
    ]
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).resolve().parent)
    unique: dict[Path, None] = {}
    for path in candidates:
        unique.setdefault(path, None)
    return list(unique)


def probe(bindir: Path) -> PgBinaries | None:
    """The server in `bindir`, or None when it lacks a server tool or is too old."""
    if not all(os.access(bindir / tool, os.X_OK) for tool in SERVER_TOOLS):
        return None
    config = _ask([str(bindir / "pg_config"), "--version", "--sharedir"])
    if config and len(config) == 2 and (major := _major(config[0])) is not None:
        sharedir = Path(config[1].strip())
    else:
        version = _ask([str(bindir / "postgres"), "--version"])
        major = _major(version[0]) if version else None
        if major is None:
            return None
        debian = Path(f"/usr/share/postgresql/{major}")
        sharedir = debian if debian.is_dir() else bindir.parent / "share" / "postgresql"
    return PgBinaries(bindir, major, sharedir) if major >= MIN_MAJOR else None


def search_path() -> list[Path]:
    """`ZONINGSYNC_PG_BINDIR` (one directory or a path list) when set, else the system's."""
    if override := os.environ.get(BINDIR_ENV):
        return [Path(part) for part in override.split(os.pathsep) if part]
    return system_bindirs()


def available_servers(bindirs: Sequence[Path] | None = None) -> list[PgBinaries]:
    """Every usable server (major >= 13) among `bindirs`, newest first."""
    servers: dict[Path, PgBinaries] = {}
    for bindir in search_path() if bindirs is None else bindirs:
        if (found := probe(bindir)) is not None:
            servers.setdefault(found.bindir, found)
    return sorted(servers.values(), key=lambda server: server.major, reverse=True)


def find_binaries(bindirs: Sequence[Path] | None = None, *, major: int | None = None
                  ) -> PgBinaries:
    """The newest server with PostGIS (or the one of `major`), or an error naming packages."""
    servers = available_servers(bindirs)
    if major is not None:
        servers = [server for server in servers if server.major == major]
        if not servers:
            raise BinariesMissing(
                f"PostgreSQL {major} server binaries not found; install them: "
                f"apt-get install postgresql-{major} postgresql-{major}-postgis-3"
            )
    if not servers:
        raise BinariesMissing(INSTALL_SERVER)
    for server in servers:
        if server.has_postgis:
            return server
    newest = servers[0].major
    raise BinariesMissing(
        f"PostGIS is not installed for PostgreSQL {newest}; install it: "
        f"apt-get install postgresql-{newest}-postgis-3"
    )
