"""The embedded cluster: start, reuse, stop, and each bad state with one clear message."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from zoningsync.cli import cli
from zoningsync.errors import BinariesMissing, ClusterError
from zoningsync.pgcluster import EmbeddedCluster, find_binaries

FAST = {"fsync": "off", "synchronous_commit": "off"}


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="zs-cl-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def cluster(state_dir: Path) -> AsyncIterator[EmbeddedCluster]:
    cluster = EmbeddedCluster(state_dir, settings=FAST)
    try:
        yield cluster
    finally:
        await cluster.stop()


async def test_start_returns_a_url_with_postgis_ready(cluster: EmbeddedCluster) -> None:
    url = await cluster.start()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT postgis_lib_version()")
        assert await conn.fetchval("SELECT current_user") == "zoningsync"
    finally:
        await conn.close()


async def test_a_second_start_reuses_the_running_cluster(cluster: EmbeddedCluster) -> None:
    await cluster.start()
    first = await cluster.status()
    await cluster.start()
    second = await cluster.status()
    assert first.running and second.running
    assert first.pid == second.pid


async def test_stop_is_idempotent_and_status_follows(cluster: EmbeddedCluster) -> None:
    await cluster.start()
    assert await cluster.stop() is True
    assert await cluster.stop() is False
    status = await cluster.status()
    assert status.initialized and not status.running


async def test_psql_accepts_the_url(cluster: EmbeddedCluster) -> None:
    url = await cluster.start()
    psql = shutil.which("psql") or str(find_binaries().bindir / "psql")
    proc = await asyncio.create_subprocess_exec(
        psql, url, "-Atc", "SELECT 40 + 2", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().strip() == "42"


async def test_a_stale_postmaster_pid_does_not_block_a_start(cluster: EmbeddedCluster) -> None:
    await cluster.start()
    status = await cluster.status()
    assert status.pid is not None
    os.kill(status.pid, 9)  # the postmaster dies without cleaning up
    for _ in range(100):
        try:
            os.kill(status.pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    assert (cluster.data_dir / "postmaster.pid").exists()
    await cluster.start()
    assert (await cluster.status()).running


async def test_an_occupied_port_moves_the_cluster_to_a_free_one(cluster: EmbeddedCluster) -> None:
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


def test_missing_server_binaries_name_the_package(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("ZONINGSYNC_PG_BINDIR", str(tmp_path))
    with pytest.raises(BinariesMissing, match=r"apt-get install postgresql-15"):
        find_binaries()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the cluster as another user")
async def test_a_state_dir_the_cluster_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    hidden = Path(tempfile.mkdtemp(prefix="zs-hidden-", dir="/tmp"))
    try:
        hidden.chmod(0o700)
        cluster = EmbeddedCluster(hidden / "state")
        with pytest.raises(ClusterError, match="cannot reach"):
            await cluster.start()
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def test_a_state_dir_path_too_long_for_a_socket_is_refused(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(Path("/tmp/" + "x" * 120))
    with pytest.raises(ClusterError, match="too long for a unix socket"):
        asyncio.run(cluster.start())


def test_db_commands_start_url_status_stop(state_dir: Path) -> None:
    runner = CliRunner()
    env = {"ZONINGSYNC_STATE_DIR": str(state_dir)}
    try:
        started = runner.invoke(cli, ["db", "start"], env=env)
        assert started.exit_code == 0, started.output
        url = runner.invoke(cli, ["db", "url"], env=env)
        assert url.exit_code == 0
        assert url.stdout.strip().startswith("postgresql://zoningsync@/zoningsync?host=")
        assert url.stdout.count("\n") == 1
        assert runner.invoke(cli, ["db", "status"], env=env).exit_code == 0
    finally:
        stopped = runner.invoke(cli, ["db", "stop"], env=env)
    assert stopped.exit_code == 0
    assert runner.invoke(cli, ["db", "status"], env=env).exit_code == 3
