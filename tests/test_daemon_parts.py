"""The daemon's parts on their own: notify socket, supervisor, reload, options, imports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.portal_helpers import feed_config
from zoningsync.commands.run import parse_metrics_address
from zoningsync.config import load_sources
from zoningsync.daemon.lifecycle import Lifecycle
from zoningsync.daemon.main import merge_reload
from zoningsync.daemon.notify import Notifier, watchdog_interval_s
from zoningsync.daemon.supervisor import Supervisor
from zoningsync.errors import UsageError


def test_notify_reaches_an_abstract_socket_named_with_an_at_sign() -> None:
    name = f"zoningsync-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    try:
        notifier = Notifier("@" + name)
        notifier.ready("0 running")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=0 running"
        notifier.close()
    finally:
        receiver.close()


def test_notify_sends_nothing_without_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    notifier.ready("idle")  # no socket, no error
    assert notifier.address is None


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("1000000", "", 0.5), ("30000000", "self", 15.0), ("", "", None), ("0", "", None),
    ("1000000", "1", None),
])
def test_the_watchdog_pings_at_half_its_interval_when_meant_for_this_process(
        monkeypatch: pytest.MonkeyPatch, usec: str, pid: str, expected: float | None) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert watchdog_interval_s() == expected


async def test_a_crashed_side_task_stops_the_daemon_with_exit_one_and_its_reason() -> None:
    lifecycle = Lifecycle()
    supervisor = Supervisor(lifecycle)

    async def crash() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("listener fell over")

    supervisor.start("control-listener", crash())
    supervisor.start("watchdog", asyncio.Event().wait())
    await asyncio.wait_for(supervisor.watch(), 5)
    await supervisor.stop_all()
    assert lifecycle.exit_code == 1
    assert lifecycle.reason == "control-listener crashed: RuntimeError: listener fell over"
    assert all(task.done() for task in supervisor.tasks)


async def test_a_stop_request_ends_the_watch_with_exit_zero() -> None:
    lifecycle = Lifecycle()
    supervisor = Supervisor(lifecycle)
    supervisor.start("scheduler", asyncio.Event().wait())
    lifecycle.request_stop("signal SIGTERM")
    await asyncio.wait_for(supervisor.watch(), 5)
    await supervisor.stop_all()
    assert (lifecycle.exit_code, lifecycle.reason) == (0, "signal SIGTERM")


def test_a_reload_keeps_the_old_jurisdiction_of_a_file_that_no_longer_loads(
        tmp_path: Path) -> None:
    feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/P/FeatureServer/0")
    old = load_sources(tmp_path / "sources")
    (tmp_path / "sources" / "test-county.toml").write_text("[jurisdiction\n")
    new = load_sources(tmp_path / "sources")
    assert merge_reload(old.jurisdictions, new) == old.jurisdictions


def test_a_feed_reads_its_jitter_key(tmp_path: Path) -> None:
    feed = feed_config(tmp_path, "http://127.0.0.1:9/arcgis/rest/services/P/FeatureServer/0",
                       extra='schedule = "every 30s"\njitter = "0s"')
    assert (feed.schedule.interval_s, feed.schedule.jitter_s) == (30, 0)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9000", ("::1", 9000)),
    ("0.0.0.0:9464", ("0.0.0.0", 9464)), ("localhost:0", ("localhost", 0)), ("off", None),
    ("OFF", None),
])
def test_metrics_addresses(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_metrics_address(text) == expected


@pytest.mark.parametrize("text", ["9464", "127.0.0.1:", "example.com:9464", "1.2.3.4:99999"])
def test_a_bad_metrics_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="ZONINGSYNC_METRICS"):
        parse_metrics_address(text)


def test_run_and_sync_start_without_the_cluster_or_portal_code() -> None:
    code = ("import sys, zoningsync.cli, zoningsync.daemon.main, zoningsync.commands.sync;"
            "print(sorted(m for m in sys.modules"
            " if m.startswith(('zoningsync.pgcluster', 'zoningsync.portal'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
