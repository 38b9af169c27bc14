"""`zoningsync db start|stop|status|url`: answers on stdout only, exit codes for scripts."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from click.testing import CliRunner, Result

from zoningsync.commands.db import NOT_RUNNING_EXIT, db
from zoningsync.errors import ClusterNotRunning
from zoningsync.observability import configure_logging
from zoningsync.pgcluster import EmbeddedCluster, find_binaries
from zoningsync.settings import Settings, load_settings


@pytest.fixture(scope="module", autouse=True)
def logs_to_stderr() -> Iterator[None]:
    """As the root command does: logs on stderr, so stdout holds only answers."""
    configure_logging("info")
    yield
    structlog.reset_defaults()


def settings_in(state_dir: Path) -> Settings:
    return load_settings({"state_dir": str(state_dir)})


def temp_state_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="zs-cmd-", dir="/tmp"))
    path.chmod(0o755)  # the unprivileged cluster user must get in
    return path


def invoke(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(db, list(args), obj=settings)


@pytest.fixture(scope="module")
def started() -> Iterator[tuple[Settings, Result]]:
    """A cluster started by `db start`, with that command's result."""
    state_dir = temp_state_dir()
    settings = settings_in(state_dir)
    try:
        yield settings, invoke(settings, "start")
    finally:
        invoke(settings, "stop")
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def fresh() -> Iterator[Settings]:
    """Settings pointing at a state dir with no cluster yet."""
    state_dir = temp_state_dir()
    settings = settings_in(state_dir)
    try:
        yield settings
    finally:
        invoke(settings, "stop")
        shutil.rmtree(state_dir, ignore_errors=True)


def test_start_prints_only_the_url(started: tuple[Settings, Result]) -> None:
    settings, result = started
    assert result.exit_code == 0, result.output
    assert result.stdout == EmbeddedCluster(settings.state_dir).url() + "\n"
    assert result.stdout.startswith("postgresql://zoningsync@/zoningsync?host=/")


def test_url_prints_only_the_url_that_start_printed(started: tuple[Settings, Result]) -> None:
    settings, result = started
    answer = invoke(settings, "url")
    assert answer.exit_code == 0
    assert answer.stdout == result.stdout


def test_psql_connects_with_the_printed_url(started: tuple[Settings, Result]) -> None:
    settings, _ = started
    url = invoke(settings, "url").stdout.strip()
    psql = shutil.which("psql") or str(find_binaries().bindir / "psql")
    done = subprocess.run([psql, url, "-Atc", "SELECT 'ok'"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, "ok\n")


def test_status_of_a_running_cluster_exits_zero_and_names_its_pid(
        started: tuple[Settings, Result]) -> None:
    settings, _ = started
    result = invoke(settings, "status")
    assert result.exit_code == 0
    assert result.stdout.startswith("running: PostgreSQL ")
    assert " pid " in result.stdout


def test_status_json_answers_every_field(started: tuple[Settings, Result]) -> None:
    settings, start = started
    answer = orjson.loads(invoke(settings, "status", "--json").stdout)
    assert answer["running"] is True and answer["initialized"] is True
    assert answer["url"] == start.stdout.strip()
    assert answer["data_dir"] == str(settings.state_dir / "postgres" / "data")
    assert isinstance(answer["pid"], int) and isinstance(answer["port"], int)


def test_url_of_a_never_started_cluster_fails_saying_to_start_it(fresh: Settings) -> None:
    result = invoke(fresh, "url")
    assert result.exit_code == 1
    assert isinstance(result.exception, ClusterNotRunning)
    assert result.stdout == ""


def test_status_of_a_never_started_cluster_exits_three(fresh: Settings) -> None:
    result = invoke(fresh, "status")
    assert result.exit_code == NOT_RUNNING_EXIT
    assert result.stdout.startswith("not initialized")


def test_stop_is_idempotent_and_status_then_exits_three(fresh: Settings) -> None:
    assert invoke(fresh, "start").exit_code == 0
    assert invoke(fresh, "stop").exit_code == 0
    again = invoke(fresh, "stop")
    assert again.exit_code == 0
    assert again.stdout == ""
    status = invoke(fresh, "status", "--json")
    assert status.exit_code == NOT_RUNNING_EXIT
    assert orjson.loads(status.stdout)["running"] is False
