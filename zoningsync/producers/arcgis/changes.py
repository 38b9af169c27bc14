"""ArcGIS change tracking: what the service says it can do, and what extractChanges answers.

A FeatureServer with the `ChangeTracking` capability numbers its edits with
server generations; `extractChanges` answers the inserts, updates and deletes
since one. Real servers say so on the service root (`capabilities`,
`changeTrackingInfo.layerServerGens`, `extractChangesCapabilities`) and repeat
the generations on the layer (`serverGens`). Every member is read as a server
may really send it: anything unreadable means no change tracking, so the run
falls back to the edit-date strategy instead of failing.

The functions here are pure: the producer fetches, these read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoningsync.errors import UpstreamRefused
from zoningsync.http import BadAnswer
from zoningsync.producers.arcgis.answers import answer_check
from zoningsync.records import CrsSpec

# Words a server's error uses when the generation asked from is older than the
# change history it keeps (ArcGIS says "serverGen ... out of range" or "expired").
EXPIRED_HINTS = ("servergen", "server gen", "generation")


class GenerationExpired(UpstreamRefused):
    """The server no longer keeps changes since the stored generation: a full read."""


@dataclass(frozen=True)
class ChangeTracking:
    """A layer that can answer extractChanges, and its generations when last asked."""

    service_url: str
    layer_id: int
    server_gen: int
    min_server_gen: int | None
    supports_ids_only: bool

    def expired(self, generation: int) -> bool:
        """Whether changes since `generation` are older than the history the server keeps."""
        return self.min_server_gen is not None and generation < self.min_server_gen


@dataclass
class ChangeSet:
    """One extractChanges answer for one layer.

    `features` holds the inserted and updated features when the server sent them;
    `changed_oids` their object ids when it sent ids only (a large answer), to be
    read through `/query`. Deletes come as object ids or, from some servers, as
    global ids.
    """

    server_gen: int
    features: list[Mapping[str, Any]] | None = None
    changed_oids: list[int] = field(default_factory=list)
    deleted_oids: list[int] = field(default_factory=list)
    deleted_global_ids: list[str] = field(default_factory=list)
    crs: CrsSpec | None = None
    exceeded: bool = False


def service_of(layer_url: str) -> tuple[str, int] | None:
    """The FeatureServer URL and layer id of a layer URL, if it is one."""
    base, _, last = layer_url.rstrip("/").rpartition("/")
    if not last.isdigit() or not base.lower().endswith("/featureserver"):
        return None
    return base, int(last)


def parse_change_tracking(service_url: str, layer_id: int, service: Mapping[str, Any],
                          layer: Mapping[str, Any]) -> ChangeTracking | None:
    """Change tracking of one layer, from the service root and the layer metadata."""
    capabilities = {c.strip().lower() for c in _text(service.get("capabilities")).split(",")}
    if "changetracking" not in capabilities:
        return None
    gens = _layer_gens(_mapping(service.get("changeTrackingInfo")).get("layerServerGens"),
                       layer_id) or _mapping(layer.get("serverGens"))
    server_gen = _generation(gens.get("serverGen"))
    if server_gen is None:
        return None
    extract = _mapping(service.get("extractChangesCapabilities"))
    return ChangeTracking(service_url, layer_id, server_gen,
                          _generation(gens.get("minServerGen")),
                          extract.get("supportsReturnIdsOnly") is True)


def extract_params(layer_id: int, generation: int, *, ids_only: bool) -> dict[str, str]:
    """The form of an extractChanges request since `generation`."""
    return {
        "layers": f"[{layer_id}]",
        "layerServerGens": f'[{{"id":{layer_id},"serverGen":{generation}}}]',
        "returnInserts": "true", "returnUpdates": "true", "returnDeletes": "true",
        "returnIdsOnly": "true" if ids_only else "false",
        "dataFormat": "json",
    }


def extract_check(token_env: str | None) -> Any:
    """The answer check of extractChanges: an expired generation is told apart."""
    usual = answer_check("", token_env)

    def check(answer: Any) -> None:
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict) and _mentions_generation(error):
            raise GenerationExpired(
                f"the server keeps no changes that old ({_text(error.get('message'))[:200]})")
        usual(answer)

    return check


def parse_extract(answer: Mapping[str, Any], layer_id: int) -> ChangeSet:
    """A synchronous extractChanges answer as a ChangeSet; BadAnswer if it is none."""
    gens = _layer_gens(answer.get("layerServerGens"), layer_id)
    server_gen = _generation(gens.get("serverGen"))
    if server_gen is None:
        raise BadAnswer(f"the answer names no serverGen for layer {layer_id}",
                        retryable=False)
    edits = answer.get("edits")
    edit = next((e for e in edits if isinstance(e, dict) and e.get("id") == layer_id),
                {}) if isinstance(edits, list) else {}
    crs = CrsSpec.from_esri(answer.get("spatialReference"))
    changes = ChangeSet(server_gen, crs=crs,
                        exceeded=answer.get("exceededTransferLimit") is True
                        or edit.get("exceededTransferLimit") is True)
    if "objectIds" in edit:
        ids = _mapping(edit.get("objectIds"))
        changes.changed_oids = sorted(_oids(ids.get("adds"), "adds")
                                      + _oids(ids.get("updates"), "updates"))
        _set_deletes(changes, ids.get("deletes"))
        return changes
    features = _mapping(edit.get("features"))
    changes.features = _features(features.get("adds")) + _features(features.get("updates"))
    _set_deletes(changes, features.get("deleteIds"))
    return changes


def job_status(answer: Mapping[str, Any]) -> tuple[str, str | None]:
    """An asynchronous job's status (lower case) and its result URL once there is one."""
    status = _text(answer.get("status")).lower()
    result = answer.get("resultUrl")
    return status, result if isinstance(result, str) and result else None


def _set_deletes(changes: ChangeSet, deletes: Any) -> None:
    values = deletes if isinstance(deletes, list) else []
    changes.deleted_oids = sorted(v for v in values if type(v) is int)
    changes.deleted_global_ids = [v for v in values if isinstance(v, str)]
    if len(changes.deleted_oids) + len(changes.deleted_global_ids) != len(values):
        raise BadAnswer("the answer's deletes hold values that are neither object ids "
                        "nor global ids", retryable=False)


def _features(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadAnswer(f"the answer's features are {type(value).__name__}", retryable=False)
    return value


def _oids(value: Any, what: str) -> list[int]:
    values = value if isinstance(value, list) else []
    if not all(type(v) is int for v in values):
        raise BadAnswer(f"the answer's {what} hold an object id that is not an integer",
                        retryable=False)
    return values


def _layer_gens(value: Any, layer_id: int) -> Mapping[str, Any]:
    entries: Sequence[Any] = value if isinstance(value, list) else []
    return next((e for e in entries if isinstance(e, dict) and e.get("id") == layer_id), {})


def _generation(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _mentions_generation(error: Mapping[str, Any]) -> bool:
    details = error.get("details")
    parts = [error.get("message"), *(details if isinstance(details, list) else [details])]
    text = " ".join(_text(p) for p in parts).lower()
    return any(hint in text for hint in EXPIRED_HINTS)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
