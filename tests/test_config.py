"""Source files: valid ones load; every mistake names the file, the key and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zoningsync.config import (
    SourceError,
    load_source_file,
    load_sources,
    parse_schedule,
    read_source_file,
    select_feeds,
)
from zoningsync.errors import SourceConfigError
from zoningsync.records import Kind

VALID = """
[jurisdiction]
id = "wake-county-nc"
name = "Wake County, NC"

[[feeds]]
id = "parcels"
kind = "parcels"
type = "arcgis"
url = "https://gis.example.gov/arcgis/rest/services/County/Parcels/FeatureServer/0"
key = "PIN"
schedule = "every 6h"
rate_limit = { requests_per_second = 2, burst = 4 }
[feeds.fields]
parcel_id = "PIN"
zoning_code = "ZONING"
zoning_desc = "ZONE_DESC"
"""


def write(tmp_path: Path, text: str, name: str = "wake.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_documented_example_loads_with_defaults(tmp_path: Path) -> None:
    jurisdiction = load_source_file(write(tmp_path, VALID))
    feed = jurisdiction.feeds[0]
    assert feed.full_id == "wake-county-nc/parcels"
    assert feed.kind is Kind.PARCELS
    assert feed.key == ("PIN",)
    assert feed.schedule.interval_s == 6 * 3600
    assert (feed.rate_limit.requests_per_second, feed.rate_limit.burst) == (2.0, 4)
    assert (feed.page_size, feed.h3_resolution, feed.incremental) == (2000, 7, "auto")


def test_shipped_source_files_load() -> None:
    root = Path(__file__).parents[1] / "sources"
    assert load_sources(root)
    assert load_source_file(root / "examples" / "wake-county-nc.toml").feeds


def test_a_composite_key_is_a_list(tmp_path: Path) -> None:
    text = VALID.replace('key = "PIN"', 'key = ["BOOK", "PAGE"]')
    assert load_source_file(write(tmp_path, text)).feeds[0].key == ("BOOK", "PAGE")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('kind = "parcels"', 'kind = "buildings"'), "feeds.parcels.kind"),
        (('type = "arcgis"', 'type = "wfs"'), "feeds.parcels.type"),
        (('url = "https://gis', 'url = "ftp://gis'), "feeds.parcels.url"),
        (('schedule = "every 6h"', 'schedule = "often"'), "feeds.parcels.schedule"),
        (('schedule = "every 6h"', 'schedule = "61 * * * *"'), "feeds.parcels.schedule"),
        (("burst = 4", "burst = 0"), "feeds.parcels.rate_limit.burst"),
        (('key = "PIN"', 'key = "PIN"\npage_size = 0'), "feeds.parcels.page_size"),
        (('key = "PIN"', 'key = "PIN"\nh3_resolution = 16'), "feeds.parcels.h3_resolution"),
        (('key = "PIN"', 'key = "PIN"\nincremental = "sometimes"'), "feeds.parcels.incremental"),
        (('key = "PIN"', 'key = "PIN"\ntoken_env = "not a name"'), "feeds.parcels.token_env"),
        (('key = "PIN"', 'key = "PIN"\npagesize = 100'), "feeds.parcels.pagesize: unknown key"),
        (('parcel_id = "PIN"', 'parcel = "PIN"'), "feeds.parcels.fields.parcel"),
        (('key = "PIN"', 'key = 5'), "feeds.parcels.key"),
        (('id = "wake-county-nc"', 'id = "Wake County"'), "jurisdiction.id"),
    ],
)
def test_each_mistake_names_file_and_key(tmp_path: Path, edit: tuple[str, str],
                                         expected: str) -> None:
    path = write(tmp_path, VALID.replace(*edit, 1))
    with pytest.raises(SourceConfigError) as caught:
        load_source_file(path)
    assert str(path) in caught.value.message
    assert expected in caught.value.message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "\n[[feeds]\n")
    with pytest.raises(SourceConfigError, match="not valid TOML"):
        load_source_file(path)


def test_a_missing_required_key_says_it_is_required(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('key = "PIN"\n', ""))
    with pytest.raises(SourceConfigError, match=r"feeds\.parcels\.key: is required"):
        load_source_file(path)


def test_a_jurisdiction_id_used_twice_is_an_error_of_the_later_file(tmp_path: Path) -> None:
    first = write(tmp_path, VALID, "a.toml")
    later = write(tmp_path, VALID, "b.toml")
    sources = load_sources(tmp_path)
    assert [j.source_file for j in sources.jurisdictions] == [first]
    [error] = sources.errors
    assert error.file == later
    assert f"{later}: jurisdiction.id 'wake-county-nc' is already used by {first}" in (
        error.summary)


def test_select_feeds_resolves_jurisdiction_and_feed(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    sources = load_sources(tmp_path)
    assert [f.id for f in select_feeds(sources, "wake-county-nc")] == ["parcels"]
    assert [f.id for f in select_feeds(sources, "wake-county-nc/parcels")] == ["parcels"]
    with pytest.raises(SourceConfigError, match="has no feed 'zoning'"):
        select_feeds(sources, "wake-county-nc/zoning")
    with pytest.raises(SourceConfigError, match="unknown jurisdiction"):
        select_feeds(sources, "durham")


@pytest.mark.parametrize(
    ("text", "interval"),
    [("every 6h", 21600), ("every 15m", 900), ("every 1d", 86400), ("0 3 * * *", None),
     ("*/15 8-18 * * 1-5", None)],
)
def test_schedules_accept_intervals_and_cron(text: str, interval: int | None) -> None:
    assert parse_schedule(text).interval_s == interval


@pytest.mark.parametrize("text", ["every 10s", "every day", "0 3 * *", "0 24 * * *", "5-1 * * * *"])
def test_schedules_refuse_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


NUMERIC_KEYS = [
    ("rate_limit.requests_per_second", "rate_limit = { requests_per_second = {v}, burst = 4 }"),
    ("rate_limit.burst", "rate_limit = { requests_per_second = 2, burst = {v} }"),
    ("timeout_s", "timeout_s = {v}"),
    ("max_retries", "max_retries = {v}"),
    ("page_size", "page_size = {v}"),
    ("h3_resolution", "h3_resolution = {v}"),
    ("full_refresh_every", "full_refresh_every = {v}"),
]
HOSTILE_NUMBERS = ["nan", "inf", "-inf", "1e308", "-1", "true", "99999999999999999999"]


def with_feed_line(line: str) -> str:
    """VALID with `line` in the feed table (replacing its rate_limit when it is one)."""
    if line.startswith("rate_limit"):
        return VALID.replace("rate_limit = { requests_per_second = 2, burst = 4 }", line)
    return VALID.replace('key = "PIN"', f'key = "PIN"\n{line}')


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
@pytest.mark.parametrize(("key", "line"), NUMERIC_KEYS, ids=[k for k, _ in NUMERIC_KEYS])
def test_every_numeric_key_refuses_non_finite_out_of_range_and_bool(
        tmp_path: Path, key: str, line: str, value: str) -> None:
    path = write(tmp_path, with_feed_line(line.replace("{v}", value)))
    with pytest.raises(SourceConfigError) as caught:
        load_source_file(path)
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"{path}: feeds.parcels.{key}: ")


def test_a_refused_number_names_the_allowed_range(tmp_path: Path) -> None:
    path = write(tmp_path, with_feed_line("timeout_s = nan"))
    with pytest.raises(SourceConfigError,
                       match=r"nan is not a finite number; use a number greater than 0 and "
                             r"at most 3600"):
        load_source_file(path)


@pytest.mark.parametrize(("key", "line", "expected"), [
    ("requests_per_second", "rate_limit = { requests_per_second = 1000 }", 1000.0),
    ("burst", "rate_limit = { requests_per_second = 1, burst = 10000 }", 10000),
    ("timeout_s", "timeout_s = 3600", 3600.0),
    ("page_size", "page_size = 100000", 100000),
    ("full_refresh_every", "full_refresh_every = 100000", 100000),
])
def test_the_upper_bounds_themselves_are_accepted(tmp_path: Path, key: str, line: str,
                                                  expected: float) -> None:
    feed = load_source_file(write(tmp_path, with_feed_line(line))).feeds[0]
    holder = feed.rate_limit if key in ("requests_per_second", "burst") else feed
    assert getattr(holder, key) == expected


@pytest.mark.parametrize(("url", "secret"), [
    ("https://gis.example.gov/arcgis/rest/services/P/FeatureServer/0?token=s3cr3tT0ken",
     "s3cr3tT0ken"),
    ("https://gis.example.gov/arcgis/rest/services/P/FeatureServer/0?f=json&x=s3cr3tT0ken",
     "s3cr3tT0ken"),
    ("https://gis.example.gov/arcgis/rest/services/P/FeatureServer/0#s3cr3tT0ken",
     "s3cr3tT0ken"),
    ("http://admin:hunter2secret@gis.example.gov/arcgis/rest/services/P/FeatureServer/0",
     "hunter2secret"),
])
def test_a_url_carrying_a_secret_is_refused_without_echoing_it(tmp_path: Path, url: str,
                                                                secret: str) -> None:
    text = VALID.replace(
        '"https://gis.example.gov/arcgis/rest/services/County/Parcels/FeatureServer/0"',
        f'"{url}"')
    path = write(tmp_path, text)
    with pytest.raises(SourceConfigError) as caught:
        load_source_file(path)
    assert f"{path}: feeds.parcels.url: " in caught.value.message
    assert "token_env" in caught.value.message
    assert secret not in caught.value.message


@pytest.mark.parametrize(("edit", "expected"), [
    (('key = "PIN"', 'key = "PIN"\nwhere = "' + "A" * 9000 + '"'), "feeds.parcels.where"),
    (('id = "parcels"', 'id = "' + "p" * 65 + '"'), "feeds[0].id"),
    (('name = "Wake County, NC"', 'name = "' + "W" * 201 + '"'), "jurisdiction.name"),
    (('key = "PIN"', 'key = "PIN\\u0000"'), "feeds.parcels.key"),
    (('key = "PIN"', 'key = ["PIN", "PIN"]'), "feeds.parcels.key"),
    (('schedule = "every 6h"', 'schedule = "every 999999999d"'), "feeds.parcels.schedule"),
    (('schedule = "every 6h"', 'schedule = "*/99999999999999999999 * * * *"'),
     "feeds.parcels.schedule"),
    (('url = "https://gis.example.gov/', 'url = "https://gis.example.gov:99999/'),
     "feeds.parcels.url"),
])
def test_absurd_strings_ids_and_schedules_are_refused(tmp_path: Path, edit: tuple[str, str],
                                                      expected: str) -> None:
    path = write(tmp_path, VALID.replace(*edit, 1))
    with pytest.raises(SourceConfigError) as caught:
        load_source_file(path)
    assert f"{path}: {expected}: " in caught.value.message


def test_every_problem_of_a_file_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = VALID.replace("burst = 4", "burst = 0").replace('key = "PIN"',
                                                          'key = "PIN"\ntimeout_s = inf')
    result = read_source_file(write(tmp_path, text))
    assert isinstance(result, SourceError)
    assert [m.split(": ")[1] for m in result.messages] == [
        "feeds.parcels.rate_limit.burst", "feeds.parcels.timeout_s"]
    assert "(and 1 more problem in this file" in result.summary


def test_one_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write(tmp_path, VALID, "wake.toml")
    broken = write(tmp_path, VALID.replace('"wake-county-nc"', '"durham"').replace(
        "burst = 4", "burst = nan"), "durham.toml")
    sources = load_sources(tmp_path)
    assert [j.source_file for j in sources.jurisdictions] == [good]
    [error] = sources.errors
    assert (error.file, error.jurisdiction) == (broken, "durham")
    assert error.summary.startswith(f"{broken}: feeds.parcels.rate_limit.burst: ")


def test_a_file_that_is_not_toml_means_the_jurisdiction_of_its_stem(tmp_path: Path) -> None:
    write(tmp_path, "[jurisdiction\n", "durham.toml")
    [error] = load_sources(tmp_path).errors
    assert error.jurisdiction == "durham"
    assert "not valid TOML" in error.summary


def test_a_target_only_a_broken_file_defines_fails_with_that_files_error(
        tmp_path: Path) -> None:
    write(tmp_path, VALID, "wake.toml")
    broken = write(tmp_path, VALID.replace('"wake-county-nc"', '"durham"').replace(
        "burst = 4", "burst = -1"), "durham.toml")
    with pytest.raises(SourceConfigError, match=f"^{broken}: feeds.parcels.rate_limit.burst"):
        select_feeds(load_sources(tmp_path), "durham/parcels")


def test_an_unknown_target_mentions_the_files_that_failed(tmp_path: Path) -> None:
    write(tmp_path, VALID, "wake.toml")
    write(tmp_path, "not toml at all", "broken.toml")
    with pytest.raises(SourceConfigError,
                       match=r"known jurisdictions: wake-county-nc; 1 source file\(s\) failed "
                             r"to load \(broken.toml\)"):
        select_feeds(load_sources(tmp_path), "orange")


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"a = " + b"[" * 100_000])
def test_unreadable_content_is_one_error_not_a_crash(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.toml"
    path.write_bytes(content)
    with pytest.raises(SourceConfigError, match=f"^{path}: "):
        load_source_file(path)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "#" * 1_000_001)
    with pytest.raises(SourceConfigError, match="a source file is at most 1000000 bytes"):
        load_source_file(path)


def test_a_fifo_named_like_a_source_file_is_an_error_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.toml")
    [error] = load_sources(tmp_path).errors
    assert error.summary == (
        f"{tmp_path / 'pipe.toml'}: not a regular file; make it a plain TOML file")
