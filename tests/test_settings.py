"""Settings: flags beat env vars beat the settings file; bad values name key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoningsync.errors import SettingsError
from zoningsync.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("DATABASE_URL", "STATE_DIR", "CONFIG", "LOG_LEVEL", "SOURCES", "CLUSTER_USER"):
        monkeypatch.delenv(f"ZONINGSYNC_{key}", raising=False)


def test_a_flag_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONINGSYNC_DATABASE_URL", "postgresql:///from_env")
    settings = load_settings({"database_url": "postgresql:///from_flag"})
    assert settings.database_url == "postgresql:///from_flag"


def test_the_environment_beats_the_settings_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "zoningsync.toml"
    config.write_text('database_url = "postgresql:///from_file"\nstate_dir = "/srv/zs"\n')
    monkeypatch.setenv("ZONINGSYNC_DATABASE_URL", "postgresql:///from_env")
    settings = load_settings(config_file=str(config))
    assert settings.database_url == "postgresql:///from_env"
    assert settings.state_dir == Path("/srv/zs")


def test_unix_socket_urls_without_a_user_are_accepted() -> None:
    url = "postgresql:///zs?host=/var/run/postgresql"
    assert load_settings({"database_url": url}).database_url == url


def test_no_database_url_means_the_embedded_cluster() -> None:
    assert load_settings().database_url is None


def test_a_non_libpq_url_is_refused_with_the_fix() -> None:
    with pytest.raises(SettingsError, match=r"--database-url.*not a libpq URL"):
        load_settings({"database_url": "mysql://localhost/zs"})


def test_a_password_never_reaches_the_error_message() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"database_url": "pgsql://zs:hunter2@db/zs"})
    assert "hunter2" not in caught.value.message


def test_an_unknown_settings_file_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "zoningsync.toml"
    config.write_text('databse_url = "postgresql:///zs"\n')
    with pytest.raises(SettingsError, match=r"zoningsync.toml: unknown key 'databse_url'"):
        load_settings(config_file=str(config))


def test_a_missing_explicit_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings(config_file=str(tmp_path / "nope.toml"))


def test_a_bad_log_level_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONINGSYNC_LOG_LEVEL", "loud")
    with pytest.raises(SettingsError, match="ZONINGSYNC_LOG_LEVEL: log_level 'loud'"):
        load_settings()


def test_root_without_systemd_keeps_state_in_var_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert load_settings().state_dir == Path("/var/lib/zoningsync")


def test_a_systemd_state_directory_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/zoningsync-a")
    assert load_settings().state_dir == Path("/var/lib/zoningsync-a")


def test_a_user_keeps_state_in_the_xdg_data_dir(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load_settings().state_dir == tmp_path / "zoningsync"


@pytest.mark.parametrize("url", ["postgresql://db:99999/zs", "postgresql://db:0/zs",
                                 "postgresql://[::1/zs", "postgresql://db/zs name"])
def test_a_database_url_with_a_bad_host_or_port_is_refused_at_load(url: str) -> None:
    with pytest.raises(SettingsError, match=r"--database-url: database_url .* not a libpq URL"):
        load_settings({"database_url": url})


def test_a_multi_host_libpq_url_is_accepted() -> None:
    url = "postgresql://zs@db1:5432,db2:5433/zs"
    assert load_settings({"database_url": url}).database_url == url


def test_a_nul_byte_in_a_settings_file_path_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "zoningsync.toml"
    config.write_text('state_dir = "/srv/zs\\u0000x"\n')
    with pytest.raises(SettingsError,
                       match=r"zoningsync.toml: state_dir: the value is not one line"):
        load_settings(config_file=str(config))


def test_an_absurdly_long_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONINGSYNC_SOURCES", "/s" * 3000)
    with pytest.raises(SettingsError, match=r"ZONINGSYNC_SOURCES: the value is too long"):
        load_settings()


@pytest.mark.parametrize("user", ["--help", "Root User", "a" * 33, "-o"])
def test_a_cluster_user_that_is_no_user_name_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                         user: str) -> None:
    monkeypatch.setenv("ZONINGSYNC_CLUSTER_USER", user)
    with pytest.raises(SettingsError, match="ZONINGSYNC_CLUSTER_USER: cluster_user"):
        load_settings()


@pytest.mark.parametrize("content", [b"\xff\xfe", b"state_dir = " + b"[" * 5000 + b"]" * 5000])
def test_an_unreadable_settings_file_is_one_error(tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "zoningsync.toml"
    config.write_bytes(content)
    with pytest.raises(SettingsError, match=r"zoningsync.toml: not a readable TOML text"):
        load_settings(config_file=str(config))
