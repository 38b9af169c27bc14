"""Source files: valid ones load; every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoningsync.config import load_source_file, load_sources, parse_schedule, select_feeds
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


def test_two_files_with_one_jurisdiction_id_are_refused(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.toml")
    write(tmp_path, VALID, "b.toml")
    with pytest.raises(SourceConfigError, match="already used"):
        load_sources(tmp_path)


def test_select_feeds_resolves_jurisdiction_and_feed(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    jurisdictions = load_sources(tmp_path)
    assert [f.id for f in select_feeds(jurisdictions, "wake-county-nc")] == ["parcels"]
    assert [f.id for f in select_feeds(jurisdictions, "wake-county-nc/parcels")] == ["parcels"]
    with pytest.raises(SourceConfigError, match="has no feed 'zoning'"):
        select_feeds(jurisdictions, "wake-county-nc/zoning")
    with pytest.raises(SourceConfigError, match="unknown jurisdiction"):
        select_feeds(jurisdictions, "durham")


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
