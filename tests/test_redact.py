"""The one redactor: what it masks, and every path out that goes through it."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator

import orjson
import pytest
import structlog

from zoningsync.observability import configure_logging
from zoningsync.redact import redact, register_secret, register_secret_params
from zoningsync.settings import redact_url


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Logging as the CLI configures it; the test's captured stderr; undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield capsys
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]


def log_as_the_cli_does() -> None:
    configure_logging("info", json=True)  # to the stderr of now: the captured one


def test_a_registered_secret_is_masked_wherever_it_appears_later() -> None:
    register_secret("Zq8-registered-anywhere")
    assert redact("the server said: bad key Zq8-registered-anywhere!") == (
        "the server said: bad key ***!")


def test_secret_parameters_of_a_query_or_form_are_registered_by_name() -> None:
    register_secret_params([("f", "json"), ("TOKEN", "Kp3-from-a-form")])
    assert redact("echo: Kp3-from-a-form") == "echo: ***"
    assert redact("json") == "json"


@pytest.mark.parametrize(("text", "shown"), [
    ("https://gis.example.org/q?f=json&token=abc123def&x=1",
     "https://gis.example.org/q?f=json&token=***&x=1"),
    ("f=json&where=1%3D1&token=abc123def", "f=json&where=1%3D1&token=***"),
    ("postgresql://zs:hunter2@db.example.org/zs", "postgresql://zs:***@db.example.org/zs"),
    ('{"error": {"token": "abc123def", "code": 498}}', '{"error": {"token": "***", "code": 498}}'),
    ("Authorization: Bearer eyJhbGciOi.x-y", "Authorization: Bearer ***"),
])
def test_secret_shaped_text_is_masked(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_redact_url_hides_a_password_in_the_query_as_well_as_in_the_user_part() -> None:
    assert redact_url("postgresql://zs:pw1@h/zs?password=pw2") == (
        "postgresql://zs:***@h/zs?password=***")


def test_log_lines_are_redacted_in_every_string_value(
        json_logs: pytest.CaptureFixture[str]) -> None:
    log_as_the_cli_does()
    structlog.get_logger("test").warning(
        "fetching https://u:pw-in-url@gis.example.org/q", form="f=json&token=form-secret-1",
        answer='{"token": "json-secret-1"}', nested={"urls": ["x?api_key=nested-secret-1"]},
        count=3)
    [entry] = logged(json_logs)
    text = orjson.dumps(entry).decode()
    for secret in ("pw-in-url", "form-secret-1", "json-secret-1", "nested-secret-1"):
        assert secret not in text
    assert entry["form"] == "f=json&token=***"
    assert entry["count"] == 3


def test_stdlib_log_records_of_libraries_are_redacted(
        json_logs: pytest.CaptureFixture[str]) -> None:
    log_as_the_cli_does()
    logging.getLogger("aiohttp.client").warning("retrying %s", "http://h/q?token=lib-secret-1")
    [entry] = logged(json_logs)
    assert entry["event"] == "retrying http://h/q?token=***"


def test_a_logged_traceback_is_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    log_as_the_cli_does()
    try:
        raise ValueError("https://h/q?token=traceback-secret-1 refused")
    except ValueError:
        structlog.get_logger("test").exception("failed")
    [entry] = logged(json_logs)
    assert "traceback-secret-1" not in str(entry["exception"])
    assert "token=***" in str(entry["exception"])


async def test_the_cli_error_line_is_redacted() -> None:
    url = "postgresql://zs:cli-secret-1@127.0.0.1:9/zs?password=cli-secret-2"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zoningsync", "--database-url", url, "runs",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    out, err = await proc.communicate()
    assert proc.returncode == 1
    assert out == b""
    [line] = err.decode().splitlines()
    assert line.startswith("zoningsync: error: cannot connect to postgresql://zs:***@")
    assert "cli-secret" not in line
