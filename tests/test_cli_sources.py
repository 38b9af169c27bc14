"""`zoningsync sources check` in a subprocess: every problem of every file, exit codes, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GOOD = """
[jurisdiction]
id = "{jid}"

[[feeds]]
id = "parcels"
kind = "parcels"
type = "arcgis"
url = "https://gis.example.gov/arcgis/rest/services/P/FeatureServer/0"
key = "PIN"

[[feeds]]
id = "zoning"
kind = "zoning_districts"
type = "arcgis"
url = "https://gis.example.gov/arcgis/rest/services/P/FeatureServer/1"
key = "ZONE_ID"
"""


def check(sources: Path, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "zoningsync", "sources", "check", "--sources", str(sources),
         *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
        check=False)
    return proc.returncode, proc.stdout, proc.stderr


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_good_files_exit_zero_with_one_line_per_jurisdiction(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    write(sources, "a.toml", GOOD.format(jid="alpha"))
    write(sources, "b.toml", GOOD.format(jid="beta"))
    code, out, err = check(sources)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"alpha  {sources / 'a.toml'}  feeds: parcels, zoning",
        f"beta  {sources / 'b.toml'}  feeds: parcels, zoning",
    ]


def test_every_problem_of_every_broken_file_is_reported_and_exits_two(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    write(sources, "a.toml", GOOD.format(jid="alpha"))
    two_problems = write(sources, "b.toml", GOOD.format(jid="beta").replace(
        'key = "PIN"', 'key = "PIN"\ntimeout_s = nan\npage_size = 1e308'))
    not_toml = write(sources, "c.toml", "[jurisdiction\n")
    code, out, err = check(sources)
    assert code == 2
    assert out.splitlines() == [f"alpha  {sources / 'a.toml'}  feeds: parcels, zoning"]
    assert err.splitlines()[0].startswith(f"zoningsync: error: {two_problems}: "
                                          "feeds.parcels.page_size: ")
    assert err.splitlines()[1].startswith(f"zoningsync: error: {two_problems}: "
                                          "feeds.parcels.timeout_s: ")
    assert err.splitlines()[2].startswith(f"zoningsync: error: {not_toml}: not valid TOML")
    assert len(err.splitlines()) == 3
    assert "Traceback" not in err


def test_json_lists_jurisdictions_with_feeds_and_errors_with_files(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    good = write(sources, "a.toml", GOOD.format(jid="alpha"))
    duplicate = write(sources, "b.toml", GOOD.format(jid="alpha"))
    code, out, _ = check(sources, "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    assert report["jurisdictions"] == [
        {"id": "alpha", "file": str(good), "feeds": ["parcels", "zoning"]}]
    [error] = report["errors"]
    assert error["file"] == str(duplicate)
    assert "jurisdiction.id 'alpha' is already used by" in error["message"]


def test_json_of_good_files_is_ok_and_exits_zero(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    write(sources, "a.toml", GOOD.format(jid="alpha"))
    code, out, _ = check(sources, "--json")
    assert code == 0
    assert json.loads(out) == {"ok": True, "errors": [], "jurisdictions": [
        {"id": "alpha", "file": str(sources / "a.toml"), "feeds": ["parcels", "zoning"]}]}


def test_a_secret_in_a_url_never_reaches_the_output(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    write(sources, "a.toml", GOOD.format(jid="alpha").replace(
        "FeatureServer/0", "FeatureServer/0?token=Zs3cretT0kenValue").replace(
        "https://gis", "https://ops:Hunter2Passw0rd@gis"))
    for args in ((), ("--json",)):
        code, out, err = check(sources, *args)
        assert code == 2
        for secret in ("Zs3cretT0kenValue", "Hunter2Passw0rd"):
            assert secret not in out + err


def test_a_missing_directory_exits_two_in_json_too(tmp_path: Path) -> None:
    code, out, _ = check(tmp_path / "nowhere", "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    assert "sources directory not found" in report["errors"][0]["message"]
