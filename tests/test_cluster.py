"""The embedded cluster: start, reuse, stop, and each bad state with one clear message.

Read-only checks share one running cluster; tests that stop, kill or squat on a
cluster get their own (each costs about two seconds).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from zoningsync.errors import BinariesMissing, ClusterError, ClusterNotRunning
from zoningsync.pgbinaries import BINDIR_ENV, find_binaries
from zoningsync.pgcluster import EmbeddedCluster

FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the cluster as another user")


def traversable_temp_dir() -> Path:
    """A fresh dir under /tmp that the unprivileged cluster user can enter."""
    path = Path(tempfile.mkdtemp(prefix="zs-cl-", dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def running() -> Iterator[EmbeddedCluster]:
    """One started cluster for the checks that leave it as they found it."""
    state_dir = traversable_temp_dir()
    cluster = EmbeddedCluster(state_dir, settings=FAST)
    try:
        asyncio.run(cluster.start())
        yield cluster
    finally:
        asyncio.run(cluster.stop())
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = traversable_temp_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def cluster(state_dir: Path) -> AsyncIterator[EmbeddedCluster]:
    """A cluster of this test's own, stopped afterwards whatever the test did to it."""
    cluster = EmbeddedCluster(state_dir, settings=FAST)
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
def cluster_owner(running: EmbeddedCluster) -> pwd.struct_passwd:
    """The OS user the clusters run as (the running cluster guarantees it exists)."""
    return pwd.getpwuid(running.root.stat().st_uid)


def fake_server(bindir: Path, major: int, *, postgis: bool) -> Path:
    """A bindir whose tools only answer version questions, like a real server's would."""
    sharedir = bindir / "share"
    (sharedir / "extension").mkdir(parents=True)
    if postgis:
        (sharedir / "extension" / "postgis.control").write_text("")
    for tool in ("pg_ctl", "initdb", "postgres"):
        (bindir / tool).write_text("#!/bin/sh\nexit 0\n")
    (bindir / "pg_config").write_text(
        "#!/bin/sh\nfor a in \"$@\"; do case $a in\n"
        f"--version) echo 'PostgreSQL {major}.2';; --sharedir) echo '{sharedir}';;\n"
        "esac; done\n"
    )
    for tool in ("pg_ctl", "initdb", "postgres", "pg_config"):
        (bindir / tool).chmod(0o755)
    return bindir


async def query(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def psql(url: str, sql: str) -> tuple[int, str]:
    binary = shutil.which("psql") or str(find_binaries().bindir / "psql")
    proc = await asyncio.create_subprocess_exec(
        binary, url, "-Atc", sql, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode().strip()


# -- a running cluster ---------------------------------------------------------------------


async def test_asyncpg_connects_with_the_url_as_the_product_superuser(
        running: EmbeddedCluster) -> None:
    assert await query(running.url(), "SELECT current_user || '@' || current_database()") == (
        "zoningsync@zoningsync")


async def test_psql_connects_with_the_url(running: EmbeddedCluster) -> None:
    assert await psql(running.url(), "SELECT 40 + 2") == (0, "42")


async def test_the_database_has_postgis(running: EmbeddedCluster) -> None:
    assert await query(running.url(), "SELECT postgis_lib_version()")


async def test_a_second_start_reuses_the_running_server(running: EmbeddedCluster) -> None:
    before = await running.status()
    assert await running.start() == running.url()
    after = await running.status()
    assert after.running
    assert after.pid == before.pid


async def test_status_of_a_running_cluster_names_pid_port_version_and_url(
        running: EmbeddedCluster) -> None:
    status = await running.status()
    assert status.initialized and status.running
    assert status.pid is not None and status.port is not None
    assert status.version == find_binaries().major
    assert status.url == running.url()


async def test_caller_settings_and_bulk_load_settings_reach_the_server(
        running: EmbeddedCluster) -> None:
    conn = await asyncpg.connect(running.url())
    try:
        shown = {name: await conn.fetchval(f"SHOW {name}")
                 for name in ("fsync", "wal_level", "shared_buffers", "listen_addresses")}
    finally:
        await conn.close()
    assert shown == {"fsync": "off", "wal_level": "minimal", "shared_buffers": "256MB",
                     "listen_addresses": "127.0.0.1"}


async def test_tcp_connections_need_the_generated_password(running: EmbeddedCluster) -> None:
    port = (await running.status()).port
    with pytest.raises(asyncpg.InvalidPasswordError):
        await query(f"postgresql://zoningsync:wrong@127.0.0.1:{port}/zoningsync", "SELECT 1")
    password = running.password_file.read_text().strip()
    assert await query(f"postgresql://zoningsync:{password}@127.0.0.1:{port}/zoningsync",
                       "SELECT 1") == 1


@as_root
def test_as_root_the_cluster_files_belong_to_the_cluster_user_and_are_private(
        running: EmbeddedCluster) -> None:
    state, files = running.state_dir.stat(), running.root.stat()
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (0, 0o755)
    assert pwd.getpwuid(files.st_uid).pw_name == "zoningsync"
    assert stat.S_IMODE(files.st_mode) == 0o700
    assert stat.S_IMODE(running.socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(running.password_file.stat().st_mode) == 0o600


# -- stopping, killing, squatting -------------------------------------------------------------


async def test_stop_says_whether_it_was_running_and_status_follows(
        cluster: EmbeddedCluster) -> None:
    await cluster.start()
    assert await cluster.stop() is True
    assert await cluster.stop() is False
    status = await cluster.status()
    assert status.initialized and not status.running and status.pid is None


async def test_concurrent_starts_of_one_cluster_share_one_server(
        cluster: EmbeddedCluster) -> None:
    starters = [EmbeddedCluster(cluster.state_dir, settings=FAST) for _ in range(3)]
    urls = await asyncio.gather(*(starter.start() for starter in starters))
    assert len(set(urls)) == 1
    assert (await cluster.status()).running


async def test_a_killed_server_leaves_a_pid_file_that_does_not_block_a_start(
        cluster: EmbeddedCluster) -> None:
    await cluster.start()
    killed = (await cluster.status()).pid
    assert killed is not None
    os.kill(killed, 9)  # the postmaster dies without cleaning up
    assert (cluster.data_dir / "postmaster.pid").exists()
    url = await cluster.start()
    status = await cluster.status()
    assert status.running and status.pid != killed
    assert await query(url, "SELECT 1") == 1


async def test_a_pid_file_naming_another_live_process_does_not_block_a_start(
        cluster: EmbeddedCluster) -> None:
    await cluster.start()
    pid_file = cluster.data_dir / "postmaster.pid"
    lines = pid_file.read_text().splitlines(keepends=True)
    owner = cluster.root.stat()
    await cluster.stop()
    # The same user's unrelated process got the dead postmaster's pid.
    as_owner: dict[str, Any] = {"user": owner.st_uid, "group": owner.st_gid} if (
        os.geteuid() == 0) else {}
    sleeper = await asyncio.create_subprocess_exec("sleep", "60", cwd="/", **as_owner)
    try:
        pid_file.write_text(f"{sleeper.pid}\n" + "".join(lines[1:]))
        await cluster.start()
        assert (await cluster.status()).running
        assert sleeper.returncode is None
    finally:
        sleeper.kill()
        await sleeper.wait()


async def test_an_occupied_port_moves_the_cluster_to_a_free_one(
        cluster: EmbeddedCluster) -> None:
    await cluster.start()
    port = (await cluster.status()).port
    await cluster.stop()
    assert port is not None
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        url = await cluster.start()
    moved = (await cluster.status()).port
    assert moved != port
    assert f"port={moved}" in url
    assert await query(url, "SELECT 1") == 1


# -- states that never start ----------------------------------------------------------------


async def test_status_of_a_never_started_cluster_says_so(state_dir: Path) -> None:
    status = await EmbeddedCluster(state_dir).status()
    assert not status.initialized and not status.running
    assert status.url is None


def test_the_url_of_a_never_started_cluster_says_to_start_it(state_dir: Path) -> None:
    with pytest.raises(ClusterNotRunning, match="zoningsync db start"):
        EmbeddedCluster(state_dir).url()


def test_missing_server_binaries_name_the_packages_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path))
    with pytest.raises(BinariesMissing) as raised:
        find_binaries()
    assert raised.value.message == (
        "PostgreSQL server binaries not found; install them: "
        "apt-get install postgresql-15 postgresql-15-postgis-3")


def test_a_server_without_postgis_names_its_postgis_package(tmp_path: Path) -> None:
    bindir = fake_server(tmp_path, 16, postgis=False)
    with pytest.raises(BinariesMissing, match=r"apt-get install postgresql-16-postgis-3$"):
        find_binaries([bindir])


def test_the_newest_server_with_postgis_is_chosen(tmp_path: Path) -> None:
    servers = {major: fake_server(tmp_path / str(major), major, postgis=major != 17)
               for major in (12, 14, 16, 17)}
    for bindir in servers.values():
        bindir.mkdir(exist_ok=True)
    chosen = find_binaries(list(servers.values()))
    assert (chosen.major, chosen.bindir) == (16, servers[16])


def test_servers_older_than_13_are_not_candidates(tmp_path: Path) -> None:
    with pytest.raises(BinariesMissing, match="server binaries not found"):
        find_binaries([fake_server(tmp_path, 12, postgis=True)])


@as_root
async def test_a_state_dir_the_cluster_user_cannot_enter_is_refused() -> None:
    hidden = Path(tempfile.mkdtemp(prefix="zs-hidden-", dir="/tmp"))  # mode 0700, root's
    try:
        with pytest.raises(ClusterError) as raised:
            await EmbeddedCluster(hidden / "state").start()
        assert f"cannot enter {hidden} " in raised.value.message
        assert "ZONINGSYNC_STATE_DIR" in raised.value.message
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


async def test_a_state_dir_too_long_for_a_socket_path_is_refused() -> None:
    with pytest.raises(ClusterError, match="too long for a unix socket path"):
        await EmbeddedCluster(Path("/tmp/" + "x" * 90)).start()
    assert not Path("/tmp/" + "x" * 90).exists()


@as_root
async def test_cluster_files_of_another_user_are_refused_with_the_owner_named(
        state_dir: Path) -> None:
    (state_dir / "postgres").mkdir()
    os.chown(state_dir / "postgres", 65534, 65534)
    owner = pwd.getpwuid(65534).pw_name
    with pytest.raises(ClusterError, match=f"belongs to '{owner}'"):
        await EmbeddedCluster(state_dir).start()


async def test_a_data_dir_of_an_uninstalled_major_version_is_refused(
        state_dir: Path, cluster_owner: pwd.struct_passwd) -> None:
    data_dir = state_dir / "postgres" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text("12\n")
    for path in (data_dir.parent, data_dir):
        os.chown(path, cluster_owner.pw_uid, cluster_owner.pw_gid)
    with pytest.raises(ClusterError, match="holds a PostgreSQL 12 cluster but only PostgreSQL"):
        await EmbeddedCluster(state_dir).start()
