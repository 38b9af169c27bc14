"""Reading change tracking from service and layer metadata, and extractChanges answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.portal_helpers import feed_config
from zoningsync.errors import SourceConfigError
from zoningsync.http import BadAnswer
from zoningsync.producers.arcgis.changes import (
    GenerationExpired,
    extract_check,
    parse_change_tracking,
    parse_extract,
    service_of,
)

SERVICE = "https://services1.arcgis.com/abc/ArcGIS/rest/services/Parcels/FeatureServer"
# As ArcGIS Online answers a hosted layer with change tracking (members trimmed).
HOSTED_ROOT: dict[str, Any] = {
    "currentVersion": 11.3, "capabilities": "Query,Extract,ChangeTracking",
    "changeTrackingInfo": {"lastSyncDate": 1717000000000, "layerServerGens": [
        {"id": 0, "minServerGen": 617069, "serverGen": 698323}]},
    "extractChangesCapabilities": {"supportsReturnIdsOnly": True,
                                   "supportsReturnFeature": True},
}
LAYER: dict[str, Any] = {"serverGens": {"minServerGen": 617000, "serverGen": 698000}}


def test_the_service_root_names_the_layers_generations() -> None:
    tracking = parse_change_tracking(SERVICE, 0, HOSTED_ROOT, LAYER)
    assert tracking is not None
    assert (tracking.server_gen, tracking.min_server_gen) == (698323, 617069)
    assert tracking.supports_ids_only


def test_the_layers_server_gens_stand_in_when_the_root_lists_none() -> None:
    root = {**HOSTED_ROOT, "changeTrackingInfo": None}
    tracking = parse_change_tracking(SERVICE, 0, root, LAYER)
    assert tracking is not None and tracking.server_gen == 698000


@pytest.mark.parametrize("root", [
    {"capabilities": "Query,Extract"},
    {"capabilities": None},
    {**HOSTED_ROOT, "changeTrackingInfo": {"layerServerGens": [{"id": 0, "serverGen": "9"}]}},
])
def test_no_capability_or_no_readable_generation_means_no_change_tracking(
        root: dict[str, Any]) -> None:
    assert parse_change_tracking(SERVICE, 0, root, {}) is None


def test_a_generation_older_than_the_kept_history_is_expired() -> None:
    tracking = parse_change_tracking(SERVICE, 0, HOSTED_ROOT, LAYER)
    assert tracking is not None
    assert tracking.expired(617068) and not tracking.expired(617069)


def test_only_feature_server_layers_have_a_service_root() -> None:
    assert service_of(SERVICE + "/3") == (SERVICE, 3)
    assert service_of("https://x.example/arcgis/rest/services/P/MapServer/0") is None


def test_an_answer_with_features_splits_changes_and_deletes() -> None:
    answer = {"layerServerGens": [{"id": 0, "serverGen": 700000}], "edits": [{"id": 0,
              "features": {"adds": [{"attributes": {"OBJECTID": 9}}],
                           "updates": [{"attributes": {"OBJECTID": 2}}],
                           "deleteIds": [5, 4]}}]}
    changes = parse_extract(answer, 0)
    assert changes.server_gen == 700000
    assert [f["attributes"]["OBJECTID"] for f in changes.features or []] == [9, 2]
    assert changes.deleted_oids == [4, 5] and not changes.exceeded


def test_an_ids_only_answer_lists_changed_and_deleted_ids() -> None:
    answer = {"layerServerGens": [{"id": 0, "serverGen": 7}], "edits": [{"id": 0,
              "objectIds": {"adds": [3], "updates": [1], "deletes": ["{A-B}"]}}]}
    changes = parse_extract(answer, 0)
    assert changes.features is None and changes.changed_oids == [1, 3]
    assert changes.deleted_global_ids == ["{A-B}"]


def test_an_answer_without_a_generation_is_refused() -> None:
    with pytest.raises(BadAnswer):
        parse_extract({"edits": []}, 0)


def test_an_error_about_the_generation_means_it_expired() -> None:
    check = extract_check(None)
    with pytest.raises(GenerationExpired):
        check({"error": {"code": 400, "message": "Unable to extract changes.",
                         "details": ["The layer server generation 12 is no longer available"]}})
    with pytest.raises(BadAnswer):
        check({"error": {"code": 500, "message": "Internal error"}})


def test_incremental_on_is_read_as_edit_date(tmp_path: Path) -> None:
    feed = feed_config(tmp_path, SERVICE + "/0", extra='incremental = "on"')
    assert feed.incremental == "edit_date"


@pytest.mark.parametrize("mode", ["auto", "changes", "edit_date", "off"])
def test_every_incremental_strategy_is_a_setting(tmp_path: Path, mode: str) -> None:
    assert feed_config(tmp_path, SERVICE + "/0",
                       extra=f'incremental = "{mode}"').incremental == mode


def test_a_webhook_secret_is_named_by_an_environment_variable(tmp_path: Path) -> None:
    feed = feed_config(tmp_path, SERVICE + "/0", extra='webhook_secret_env = "WAKE_HOOK"')
    assert feed.webhook_secret_env == "WAKE_HOOK"


def test_a_webhook_secret_written_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match=r"feeds\.parcels\.webhook_secret_env") as info:
        feed_config(tmp_path, SERVICE + "/0", extra='webhook_secret_env = "hunter2 !"')
    assert "environment variable name" in str(info.value)
