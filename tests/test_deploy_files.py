"""The deployment files say what the README's Operations section says they do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
UNIT = (ROOT / "systemd" / "zoningsync.service").read_text()
ENV_EXAMPLE = (ROOT / "systemd" / "env.example").read_text()


def operations() -> str:
    return README.split("## Operations", 1)[1].split("\n## ", 1)[0]


def test_compose_runs_postgis_with_a_pg_isready_healthcheck() -> None:
    assert re.search(r"image: postgis/postgis:\S+", COMPOSE)
    assert re.search(r"test: \[.*pg_isready", COMPOSE)
    assert "condition: service_healthy" in COMPOSE
    assert "`postgis/postgis`" in operations() and "`pg_isready`" in operations()


def test_compose_migrates_then_runs_the_daemon() -> None:
    assert "zoningsync migrate && exec zoningsync run" in COMPOSE
    assert "runs `zoningsync migrate` and then `zoningsync run`" in operations()


def test_compose_mounts_the_sources_read_only_where_the_readme_says() -> None:
    assert "- ./sources:/etc/zoningsync/sources:ro" in COMPOSE
    assert "ZONINGSYNC_SOURCES: /etc/zoningsync/sources" in COMPOSE
    assert "`./sources` is mounted\nread-only at `/etc/zoningsync/sources`" in operations()


def test_compose_publishes_metrics_on_loopback_only() -> None:
    [published] = re.findall(r'- "([^"]+):9464"', COMPOSE)
    assert published.startswith("127.0.0.1:")
    assert "`127.0.0.1:9464` only" in operations()


def test_the_dockerfile_installs_the_package_and_runs_it_unprivileged() -> None:
    assert re.search(r"^RUN pip install \.", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^USER zoningsync$", DOCKERFILE, re.MULTILINE)
    assert 'ENTRYPOINT ["zoningsync"]' in DOCKERFILE
    assert "build: ." in COMPOSE and "[`Dockerfile`](Dockerfile)" in operations()


@pytest.mark.parametrize("line", [
    "Type=notify", "Restart=on-failure", "User=zoningsync",
    "EnvironmentFile=-/etc/zoningsync/env", "StateDirectory=zoningsync", "NoNewPrivileges=yes",
    "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
    "CapabilityBoundingSet=", "ExecStart=/usr/local/bin/zoningsync run",
])
def test_the_unit_has(line: str) -> None:
    assert line in UNIT.splitlines()


def test_the_unit_has_a_watchdog() -> None:
    assert re.search(r"^WatchdogSec=\d+s$", UNIT, re.MULTILINE)


def test_env_example_lists_every_variable_the_commands_read() -> None:
    sources = "".join(p.read_text() for p in (ROOT / "zoningsync").rglob("*.py"))
    read = set(re.findall(r'envvar="(ZONINGSYNC_[A-Z_]+)"', sources))
    read |= {"ZONINGSYNC_CLUSTER_USER"}
    listed = set(re.findall(r"^#?(ZONINGSYNC_[A-Z_]+)=", ENV_EXAMPLE, re.MULTILINE))
    assert read <= listed
