"""The embedded PostGIS: a private PostgreSQL cluster under the state directory.

When no database URL is given, zoningsync runs its own cluster with the
distribution's server binaries, listening on a unix socket in
`state_dir/postgres/run` (mode 0700, so only its owner and root reach it, which
is what makes `trust` for local connections safe) and on 127.0.0.1 behind a
random password kept in `state_dir/postgres/password`. PostgreSQL refuses to run
as root, so a root zoningsync runs the cluster as an unprivileged user.

Every subprocess is an asyncio subprocess and every wait is an asyncio sleep:
starting a cluster never blocks the event loop. A lock file serializes
concurrent starts and stops of the same cluster (a CLI and a daemon, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import structlog

from zoningsync.errors import BinariesMissing, ClusterError, ClusterNotRunning
from zoningsync.pgbinaries import PgBinaries, available_servers, find_binaries
from zoningsync.store.connect import connection

__all__ = ["ClusterStatus", "EmbeddedCluster", "PgBinaries", "find_binaries"]

log = structlog.get_logger(__name__)

SUPERUSER = "zoningsync"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes, one of them the terminating NUL
SETTINGS_FILE = "zoningsync.conf"
START_TIMEOUT_S = 120
LOCK_TIMEOUT_S = 180.0
SHMEM_RETRY_S = 15.0
PROCFS = Path("/proc")
DEFAULT_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
}


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


@dataclass(frozen=True)
class _Owner:
    """The OS user the cluster's processes run as."""

    name: str
    uid: int
    gid: int

    @property
    def is_other(self) -> bool:
        """True when zoningsync (as root) must switch to this user for every tool."""
        return self.uid != os.geteuid()


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


def conf_value(value: str) -> str:
    """A postgresql.conf value: numbers and booleans bare, everything else quoted."""
    if re.fullmatch(r"-?\d+(\.\d+)?|on|off|true|false", value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


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
        self.lock_file = self.root / "lock"
        self.database = database
        self.cluster_user = cluster_user
        self.extra_settings = dict(settings or {})
        for key in self.extra_settings:
            if not re.fullmatch(r"[a-z_][a-z0-9_.]*", key):
                raise ClusterError(f"'{key}' is not a PostgreSQL setting name")

    # -- who runs the cluster ----------------------------------------------------------

    async def _owner(self) -> _Owner:
        """Ourselves, or (for root) the unprivileged cluster user, created if absent."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return _Owner(me.pw_name, me.pw_uid, me.pw_gid)
        try:
            entry = pwd.getpwnam(self.cluster_user)
        except KeyError:
            entry = await self._create_user()
        if entry.pw_uid == 0:
            raise ClusterError(
                f"the cluster user '{self.cluster_user}' is root, and PostgreSQL refuses to "
                "run as root; set ZONINGSYNC_CLUSTER_USER to an unprivileged user"
            )
        return _Owner(entry.pw_name, entry.pw_uid, entry.pw_gid)

    async def _create_user(self) -> pwd.struct_passwd:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        log.info("creating the OS user that runs the embedded cluster", user=self.cluster_user)
        output = "useradd not found"
        with contextlib.suppress(OSError):
            proc = await asyncio.create_subprocess_exec(
                useradd, "--system", "--user-group", "--no-create-home",
                "--home-dir", str(self.state_dir), "--shell", "/usr/sbin/nologin",
                self.cluster_user,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output = _one_line((await proc.communicate())[0].decode(errors="replace"))
        try:
            return pwd.getpwnam(self.cluster_user)  # also right when a racing useradd won
        except KeyError:
            raise ClusterError(
                f"cannot create the OS user '{self.cluster_user}' to run PostgreSQL "
                f"({output or 'useradd failed'}); create it, or set ZONINGSYNC_CLUSTER_USER "
                "to an existing unprivileged user"
            ) from None

    def _require_own_files(self, owner: _Owner) -> None:
        """`postgres/` must belong to the user who would run it: anyone else's is refused."""
        try:
            uid = self.root.stat().st_uid
        except FileNotFoundError:
            return
        if uid == owner.uid:
            return
        try:
            other = pwd.getpwuid(uid).pw_name
        except KeyError:
            other = f"uid {uid}"
        fix = (f"run zoningsync as '{other}'" if os.geteuid() != 0
               else f"set ZONINGSYNC_CLUSTER_USER={other}")
        raise ClusterError(
            f"{self.root} belongs to '{other}', not '{owner.name}'; {fix}, or set "
            "ZONINGSYNC_STATE_DIR to a directory of your own"
        )

    def _require_traversable(self, owner: _Owner) -> None:
        """Every directory down to the state dir must let the cluster user through."""
        if not owner.is_other:
            return
        for directory in reversed([self.state_dir, *self.state_dir.parents]):
            info = directory.stat()
            if info.st_uid == owner.uid:
                allowed = bool(info.st_mode & stat.S_IXUSR)
            elif info.st_gid == owner.gid:
                allowed = bool(info.st_mode & stat.S_IXGRP)
            else:
                allowed = bool(info.st_mode & stat.S_IXOTH)
            if not allowed:
                raise ClusterError(
                    f"the cluster user '{owner.name}' cannot enter {directory} "
                    f"({stat.filemode(info.st_mode)}); set ZONINGSYNC_STATE_DIR to a "
                    "directory it can reach, e.g. /var/lib/zoningsync"
                )

    def _require_short_socket_path(self) -> None:
        longest = self.socket_dir / ".s.PGSQL.65535"
        if len(os.fsencode(longest)) > SOCKET_PATH_MAX:
            raise ClusterError(
                f"the state directory {self.state_dir} is too long for a unix socket path "
                f"({len(os.fsencode(longest))} of at most {SOCKET_PATH_MAX} bytes); set "
                "ZONINGSYNC_STATE_DIR to a shorter path"
            )

    def _prepare_dirs(self, owner: _Owner) -> None:
        """Create the state dir (0755) and `postgres/` + `run/` (0700, the cluster user's)."""
        try:
            missing = [d for d in [self.state_dir, *self.state_dir.parents] if not d.exists()]
            for directory in reversed(missing):
                directory.mkdir(exist_ok=True)
                directory.chmod(0o755)
            self._require_traversable(owner)
            self._require_own_files(owner)
            for directory in (self.root, self.socket_dir):
                directory.mkdir(mode=0o700, exist_ok=True)
                if owner.is_other:
                    os.chown(directory, owner.uid, owner.gid)
        except PermissionError as exc:
            raise ClusterError(
                f"cannot create {exc.filename}: permission denied; set ZONINGSYNC_STATE_DIR "
                "to a directory you can write"
            ) from None

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """One start or stop at a time per cluster, across processes (polled, never blocking)."""
        with self.lock_file.open("a") as handle:
            deadline = asyncio.get_running_loop().time() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise ClusterError(
                            f"another zoningsync has held {self.lock_file} for "
                            f"{LOCK_TIMEOUT_S:.0f} s; is a start stuck?"
                        ) from None
                    await asyncio.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- subprocesses -------------------------------------------------------------------

    async def _run(self, owner: _Owner, binaries: PgBinaries, tool: str, *args: str
                   ) -> tuple[int, str]:
        """Run one server tool as the cluster's owner; return its exit code and output."""
        kwargs: dict[str, Any] = {}
        if owner.is_other:
            kwargs = {"user": owner.uid, "group": owner.gid, "extra_groups": []}
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", HOME=str(self.root))
        proc = await asyncio.create_subprocess_exec(
            str(binaries.bindir / tool), *args, cwd=str(self.root), umask=0o077,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, **kwargs,
        )
        output, _ = await proc.communicate()
        code = proc.returncode if proc.returncode is not None else -1
        return code, output.decode(errors="replace").strip()

    def _log_tail(self, lines: int = 10) -> list[str]:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def _failed(self, tool: str, output: str) -> ClusterError:
        """One line: what the tool said, then why the server said it failed."""
        said = [line for line in output.splitlines()
                if line.strip() and "Examine the log output" not in line
                and not line.startswith("waiting for server")]
        tail = [re.sub(r"^.*?\[\d+\]\s+", "", line) for line in self._log_tail()]
        why = [line for line in tail if re.match(r"(FATAL|PANIC|ERROR|HINT|DETAIL):", line)]
        message = f"{tool} failed: " + (" | ".join(line.strip() for line in said) or "no output")
        if reasons := why or tail[-3:]:
            message += f" | {self.log_file}: " + " | ".join(line.strip() for line in reasons)
        return ClusterError(message)

    # -- the cluster's files ------------------------------------------------------------

    def _initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _data_major(self) -> int | None:
        try:
            return int((self.data_dir / "PG_VERSION").read_text().strip())
        except (OSError, ValueError):
            return None

    def _settings_path(self) -> Path:
        return self.data_dir / SETTINGS_FILE

    def _configured_port(self) -> int | None:
        try:
            text = self._settings_path().read_text()
        except FileNotFoundError:
            return None
        except PermissionError:
            raise ClusterError(
                f"cannot read {self._settings_path()}: permission denied; run as root or as "
                "the user that owns the cluster"
            ) from None
        match = re.search(r"^port\s*=\s*(\d+)", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _write_settings(self, owner: _Owner, port: int) -> None:
        values = {**DEFAULT_SETTINGS, **self.extra_settings}
        values["port"] = str(port)
        values["unix_socket_directories"] = str(self.socket_dir)
        text = "# Written by zoningsync at every start; edits are overwritten.\n" + "".join(
            f"{key} = {conf_value(value)}\n" for key, value in values.items())
        path = self._settings_path()
        path.write_text(text)
        if owner.is_other:
            os.chown(path, owner.uid, owner.gid)

    async def _binaries(self) -> PgBinaries:
        """The server to run: for an existing cluster, the one of its major version."""
        major = self._data_major()
        if major is None:
            return await asyncio.to_thread(find_binaries)
        try:
            return await asyncio.to_thread(find_binaries, major=major)
        except BinariesMissing as exc:
            installed = await asyncio.to_thread(available_servers)
            if not installed:
                raise
            others = ", ".join(str(server.major) for server in installed)
            raise ClusterError(
                f"{self.data_dir} holds a PostgreSQL {major} cluster but only PostgreSQL "
                f"{others} is installed; install postgresql-{major} "
                f"postgresql-{major}-postgis-3, or set ZONINGSYNC_STATE_DIR to a new directory"
            ) from exc

    # -- public API ---------------------------------------------------------------------

    def url(self, database: str | None = None) -> str:
        """libpq URL over the unix socket; works for psql and asyncpg alike."""
        port = self._configured_port()
        if port is None:
            raise ClusterNotRunning(
                f"no embedded cluster in {self.root}; run `zoningsync db start`")
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{database or self.database}?host={host}&port={port}"

    async def start(self) -> str:
        """Initialize if needed, start or reuse, create the database and PostGIS; return url."""
        self._require_short_socket_path()
        owner = await self._owner()
        self._prepare_dirs(owner)
        async with self._locked():
            binaries = await self._binaries()
            if not self._initialized():
                await self._init(owner, binaries)
            if await self._running_pid(owner, binaries) is None:
                await self._start_server(owner, binaries)
            await self._ensure_database()
        return self.url()

    async def stop(self) -> bool:
        """Fast shutdown (sessions are cut, no data lost); True if it was running."""
        if not self._initialized():
            return False
        owner = await self._owner()
        self._require_own_files(owner)
        async with self._locked():
            binaries = await self._binaries()
            if await self._running_pid(owner, binaries) is None:
                return False
            code, output = await self._run(owner, binaries, "pg_ctl", "stop", "-w", "-m",
                                           "fast", "-t", str(START_TIMEOUT_S), "-D",
                                           str(self.data_dir))
            if code != 0:
                raise self._failed("pg_ctl stop", output)
        log.info("embedded cluster stopped", data_dir=str(self.data_dir))
        return True

    async def status(self) -> ClusterStatus:
        initialized = self._initialized()
        pid = None
        if initialized:
            owner = await self._owner()
            self._require_own_files(owner)
            pid = await self._running_pid(owner, await self._binaries())
        return ClusterStatus(
            initialized=initialized, running=pid is not None, pid=pid,
            port=self._configured_port(), data_dir=self.data_dir, socket_dir=self.socket_dir,
            version=self._data_major(),
            url=self.url() if initialized and self._configured_port() else None,
        )

    # -- steps ----------------------------------------------------------------------------

    async def _init(self, owner: _Owner, binaries: PgBinaries) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster; move it away "
                "and start again")
        self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.password_file.chmod(0o600)
        if owner.is_other:
            os.chown(self.password_file, owner.uid, owner.gid)
        log.info("initializing the embedded PostgreSQL cluster", data_dir=str(self.data_dir),
                 major=binaries.major, user=owner.name)
        code, output = await self._run(
            owner, binaries, "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
            f"--pwfile={self.password_file}",
        )
        if code != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)  # let the next start retry
            raise self._failed("initdb", output)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{SETTINGS_FILE}'\n")
        self._write_settings(owner, free_port())

    async def _running_pid(self, owner: _Owner, binaries: PgBinaries) -> int | None:
        """The postmaster's pid per `pg_ctl status`, after ruling out a dead or recycled one."""
        code, output = await self._run(owner, binaries, "pg_ctl", "status", "-D",
                                       str(self.data_dir))
        match = re.search(r"PID: (\d+)", output)
        if code != 0 or match is None:
            return None
        pid = int(match.group(1))
        processes = await asyncio.to_thread(self._server_processes)
        if processes is None or pid in processes:
            return pid  # without procfs, trust pg_ctl
        await self._clear_stale_pid_file(pid)
        return None

    def _server_processes(self) -> list[int] | None:
        """Live processes working in our data dir (a postmaster and its backends do).

        None when there is no procfs to ask. Reads /proc: run it in a thread.
        """
        if not PROCFS.is_dir():
            return None
        found = []
        data_dir = self.data_dir.resolve()
        for entry in PROCFS.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
                if state != "Z" and (entry / "cwd").readlink() == data_dir:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
        return found

    async def _clear_stale_pid_file(self, pid: int) -> None:
        """Remove a postmaster.pid whose process is a zombie or another program.

        PostgreSQL copes with a pid file naming a dead process, but not with one whose
        pid was recycled (or is an unreaped zombie, common in containers). Removing the
        file also removes PostgreSQL's shared-memory interlock, so first make sure that
        no backend of the old server still runs.
        """
        deadline = asyncio.get_running_loop().time() + SHMEM_RETRY_S
        while leftovers := await asyncio.to_thread(self._server_processes):
            if asyncio.get_running_loop().time() > deadline:
                raise ClusterError(
                    f"processes {', '.join(map(str, leftovers))} of an old server still work "
                    f"in {self.data_dir}; stop them and start again"
                )
            await asyncio.sleep(0.2)
        log.warning("removing a stale postmaster.pid", pid=pid, data_dir=str(self.data_dir))
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for socket_lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
            socket_lock.unlink(missing_ok=True)

    async def _start_server(self, owner: _Owner, binaries: PgBinaries) -> None:
        """`pg_ctl start -w`, moving off an occupied port and waiting out dying backends."""
        port = self._configured_port()
        moved_once = False
        deadline = asyncio.get_running_loop().time() + SHMEM_RETRY_S
        while True:
            if port is None or not port_is_free(port):
                new_port = free_port()
                log.warning("the embedded cluster's port is taken; moving it", old=port,
                            new=new_port)
                port = new_port
            self._write_settings(owner, port)
            code, output = await self._run(
                owner, binaries, "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S),
                "-D", str(self.data_dir), "-l", str(self.log_file),
            )
            if code == 0:
                log.info("embedded cluster started", port=port, data_dir=str(self.data_dir))
                return
            tail = "\n".join(self._log_tail())
            if "could not bind" in tail and not moved_once:
                moved_once, port = True, None  # lost a race for the port: take another
                continue
            if "shared memory block" in tail and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.5)  # a killed postmaster's backends are still exiting
                continue
            raise self._failed("pg_ctl start", output)

    async def _ensure_database(self) -> None:
        try:
            async with connection(self.url("postgres")) as admin:
                exists = await admin.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", self.database)
                if not exists:
                    await admin.execute(f'CREATE DATABASE "{self.database}"')
            async with connection(self.url()) as conn:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public")
        except asyncpg.PostgresError as exc:
            raise ClusterError(
                f"the embedded cluster is running but cannot prepare database "
                f"'{self.database}': {_one_line(str(exc))}"
            ) from exc
