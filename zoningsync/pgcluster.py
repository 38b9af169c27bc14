"""The embedded PostGIS: a private PostgreSQL cluster under the state directory.

When no database URL is given, zoningsync runs its own cluster with the
distribution's server binaries (`initdb`, `pg_ctl`), listening on a unix socket
in the state directory (and on 127.0.0.1, password-protected). PostgreSQL
refuses to run as root, so a root zoningsync runs the cluster as an unprivileged
user. Every subprocess is an asyncio subprocess: starting a cluster never blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from zoningsync.errors import BinariesMissing, ClusterError, ClusterNotRunning
from zoningsync.store.connect import connection

log = structlog.get_logger(__name__)

SUPERUSER = "zoningsync"
MIN_MAJOR = 13
SOCKET_PATH_MAX = 107
SETTINGS_FILE = "zoningsync.conf"
DEFAULT_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_buffers": "'256MB'",
    "max_wal_size": "'2GB'",
    "checkpoint_timeout": "'15min'",
    "wal_level": "'minimal'",
    "max_wal_senders": "0",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'256MB'",
}


@dataclass(frozen=True)
class PgBinaries:
    bindir: Path
    major: int
    sharedir: Path

    @property
    def has_postgis(self) -> bool:
        return (self.sharedir / "extension" / "postgis.control").exists()


@dataclass(frozen=True)
class ClusterStatus:
    initialized: bool
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    socket_dir: Path
    version: int | None
    url: str | None


def _candidate_bindirs() -> list[Path]:
    found: list[Path] = []
    if override := os.environ.get("ZONINGSYNC_PG_BINDIR"):
        return [Path(override)]
    found.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    found.extend(sorted(Path("/usr").glob("pgsql-*/bin"), reverse=True))  # PGDG on RHEL
    for name in ("pg_ctl", "pg_config"):
        if on_path := shutil.which(name):
            found.append(Path(on_path).resolve().parent)
    return found


def _major_of(bindir: Path) -> int | None:
    """Debian: /usr/lib/postgresql/15/bin; PGDG RHEL: /usr/pgsql-15/bin."""
    match = re.search(r"(?:/|pgsql-)(\d+)/bin$", str(bindir))
    return int(match.group(1)) if match else None


def _sharedir_of(bindir: Path, major: int) -> Path:
    debian = Path(f"/usr/share/postgresql/{major}")
    return debian if debian.exists() else bindir.parent / "share"


def find_binaries() -> PgBinaries:
    """The newest PostgreSQL ≥ 13 server with PostGIS, or an error naming the package."""
    servers: list[PgBinaries] = []
    for bindir in _candidate_bindirs():
        if not all((bindir / tool).exists() for tool in ("pg_ctl", "initdb", "postgres")):
            continue
        major = _major_of(bindir)
        if major is None or major < MIN_MAJOR:
            continue
        servers.append(PgBinaries(bindir, major, _sharedir_of(bindir, major)))
    if not servers:
        raise BinariesMissing(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install them: "
            "apt-get install postgresql-15 postgresql-15-postgis-3 "
            "(or give a database URL with --database-url)"
        )
    with_postgis = [s for s in servers if s.has_postgis]
    if not with_postgis:
        best = max(servers, key=lambda s: s.major)
        raise BinariesMissing(
            f"PostGIS is not installed for PostgreSQL {best.major}; install it: "
            f"apt-get install postgresql-{best.major}-postgis-3"
        )
    return max(with_postgis, key=lambda s: s.major)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedCluster:
    """A PostgreSQL + PostGIS cluster in `state_dir/postgres`, started on demand."""

    def __init__(self, state_dir: Path, *, cluster_user: str = "zoningsync",
                 database: str = "zoningsync", settings: Mapping[str, str] | None = None
                 ) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "postgres"
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_file = self.root / "postgres.log"
        self.password_file = self.root / "password"
        self.database = database
        self.cluster_user = cluster_user
        self.extra_settings = dict(settings or {})

    # -- who runs the cluster ----------------------------------------------------

    def _owner(self) -> pwd.struct_passwd:
        """The OS user the cluster runs as: ourselves, or an unprivileged one for root."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid())
        try:
            return pwd.getpwnam(self.cluster_user)
        except KeyError:
            return self._create_user()

    def _create_user(self) -> pwd.struct_passwd:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = os.spawnv(os.P_WAIT, useradd, [
            "useradd", "--system", "--user-group", "--no-create-home",
            "--home-dir", str(self.state_dir), "--shell", "/usr/sbin/nologin",
            self.cluster_user,
        ])
        try:
            return pwd.getpwnam(self.cluster_user)
        except KeyError:
            raise ClusterError(
                f"cannot create the OS user '{self.cluster_user}' to run PostgreSQL "
                f"(useradd exited {result}); create it, or set ZONINGSYNC_CLUSTER_USER to an "
                "existing unprivileged user"
            ) from None

    def _check_reachable(self, owner: pwd.struct_passwd) -> None:
        """Every parent of the state dir must be traversable by the cluster's user."""
        if os.geteuid() != 0:
            return
        for parent in [self.state_dir, *self.state_dir.parents]:
            if not parent.exists():
                continue
            mode = parent.stat()
            if mode.st_uid == owner.pw_uid:
                continue
            if not mode.st_mode & stat.S_IXOTH and not (
                mode.st_gid == owner.pw_gid and mode.st_mode & stat.S_IXGRP
            ):
                raise ClusterError(
                    f"the cluster user '{owner.pw_name}' cannot reach {parent} (mode "
                    f"{stat.filemode(mode.st_mode)}); set ZONINGSYNC_STATE_DIR to a directory "
                    "it can traverse, e.g. /var/lib/zoningsync"
                )

    def _prepare_dirs(self, owner: pwd.struct_passwd) -> None:
        if len(str(self.socket_dir / ".s.PGSQL.65535")) > SOCKET_PATH_MAX:
            raise ClusterError(
                f"the state directory path {self.state_dir} is too long for a unix socket "
                f"(limit {SOCKET_PATH_MAX} bytes); set ZONINGSYNC_STATE_DIR to a shorter path"
            )
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                self.state_dir.chmod(self.state_dir.stat().st_mode | 0o755)
            self._check_reachable(owner)
            if self.root.exists() and self.root.stat().st_uid != owner.pw_uid:
                other = pwd.getpwuid(self.root.stat().st_uid).pw_name
                raise ClusterError(
                    f"{self.root} belongs to user '{other}', not '{owner.pw_name}'; run "
                    f"zoningsync as '{other}' or set ZONINGSYNC_STATE_DIR to a directory of "
                    "your own"
                )
            for path in (self.root, self.socket_dir):
                path.mkdir(mode=0o700, exist_ok=True)
                if os.geteuid() == 0:
                    os.chown(path, owner.pw_uid, owner.pw_gid)
        except PermissionError as exc:
            raise ClusterError(
                f"cannot create {exc.filename}: permission denied; set ZONINGSYNC_STATE_DIR "
                "to a directory you can write"
            ) from None

    # -- subprocesses ---------------------------------------------------------------

    async def _run(self, binaries: PgBinaries, tool: str, *args: str,
                   check: bool = True) -> tuple[int, str]:
        owner = self._owner()
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        proc = await asyncio.create_subprocess_exec(
            str(binaries.bindir / tool), *args, cwd=str(self.root),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, **kwargs,
        )
        output, _ = await proc.communicate()
        text = output.decode(errors="replace").strip()
        code = proc.returncode if proc.returncode is not None else -1
        if check and code != 0:
            raise ClusterError(f"{tool} failed: {self._last_lines(text)}")
        return code, text

    def _last_lines(self, text: str) -> str:
        lines = [line for line in text.splitlines() if line.strip()]
        if self.log_file.exists():
            lines += [f"[postgres.log] {line}" for line in
                      self.log_file.read_text(errors="replace").splitlines()[-5:]]
        return " | ".join(lines[-6:]) or "no output"

    # -- the cluster's settings file -------------------------------------------------

    def _settings_path(self) -> Path:
        return self.data_dir / SETTINGS_FILE

    def _configured_port(self) -> int | None:
        path = self._settings_path()
        if not path.exists():
            return None
        match = re.search(r"^port\s*=\s*(\d+)", path.read_text(), re.MULTILINE)
        return int(match.group(1)) if match else None

    def _write_settings(self, port: int) -> None:
        values = {**DEFAULT_SETTINGS, **{k: self._quote(v) for k, v in
                                         self.extra_settings.items()}}
        values["port"] = str(port)
        values["unix_socket_directories"] = f"'{self.socket_dir}'"
        text = "# Written by zoningsync; edits are overwritten.\n" + "".join(
            f"{key} = {value}\n" for key, value in values.items())
        path = self._settings_path()
        path.write_text(text)
        if os.geteuid() == 0:
            owner = self._owner()
            os.chown(path, owner.pw_uid, owner.pw_gid)

    @staticmethod
    def _quote(value: str) -> str:
        return value if re.fullmatch(r"-?\d+(\.\d+)?|on|off|true|false", value) else f"'{value}'"

    def _initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _data_major(self) -> int | None:
        version = self.data_dir / "PG_VERSION"
        return int(version.read_text().strip()) if version.exists() else None

    # -- public API ---------------------------------------------------------------------

    def url(self, database: str | None = None) -> str:
        port = self._configured_port()
        if port is None:
            raise ClusterNotRunning(
                f"no embedded cluster in {self.root}; run `zoningsync db start`")
        return (f"postgresql://{SUPERUSER}@/{database or self.database}"
                f"?host={self.socket_dir}&port={port}")

    async def _init(self, binaries: PgBinaries) -> None:
        owner = self._owner()
        self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.password_file.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(self.password_file, owner.pw_uid, owner.pw_gid)
        log.info("initializing embedded PostgreSQL cluster", data_dir=str(self.data_dir),
                 major=binaries.major, user=owner.pw_name)
        await self._run(
            binaries, "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
            f"--pwfile={self.password_file}",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{SETTINGS_FILE}'\n")
        self._write_settings(free_port())

    async def _running_pid(self, binaries: PgBinaries) -> int | None:
        code, text = await self._run(binaries, "pg_ctl", "status", "-D", str(self.data_dir),
                                     check=False)
        if code != 0:
            return None
        match = re.search(r"PID: (\d+)", text)
        return int(match.group(1)) if match else None

    async def start(self) -> str:
        """Initialize if needed, start or reuse, create the database and PostGIS; return url."""
        binaries = find_binaries()
        owner = self._owner()
        self._prepare_dirs(owner)
        if not self._initialized():
            if self.data_dir.exists() and any(self.data_dir.iterdir()):
                raise ClusterError(
                    f"{self.data_dir} is not empty but holds no PostgreSQL cluster; "
                    "move it away and start again")
            await self._init(binaries)
        elif self._data_major() != binaries.major:
            raise ClusterError(
                f"{self.data_dir} holds a PostgreSQL {self._data_major()} cluster but the "
                f"installed server is {binaries.major}; install postgresql-{self._data_major()} "
                "or move the state directory away")
        if await self._running_pid(binaries) is None:
            port = self._configured_port()
            if port is None or not port_is_free(port):
                new_port = free_port()
                log.warning("embedded cluster port taken; moving", old=port, new=new_port)
                port = new_port
            self._write_settings(port)
            await self._run(binaries, "pg_ctl", "start", "-w", "-t", "120", "-D",
                            str(self.data_dir), "-l", str(self.log_file))
        await self._ensure_database()
        return self.url()

    async def _ensure_database(self) -> None:
        async with connection(self.url("postgres")) as admin:
            exists = await admin.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                await admin.execute(f'CREATE DATABASE "{self.database}"')
        async with connection(self.url()) as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public")

    async def stop(self) -> bool:
        if not self._initialized():
            return False
        binaries = find_binaries()
        if await self._running_pid(binaries) is None:
            return False
        await self._run(binaries, "pg_ctl", "stop", "-w", "-m", "fast", "-D",
                        str(self.data_dir))
        return True

    async def status(self) -> ClusterStatus:
        initialized = self._initialized()
        pid = await self._running_pid(find_binaries()) if initialized else None
        return ClusterStatus(
            initialized=initialized, running=pid is not None, pid=pid,
            port=self._configured_port(), data_dir=self.data_dir, socket_dir=self.socket_dir,
            version=self._data_major(), url=self.url() if initialized else None,
        )
