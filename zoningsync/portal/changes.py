"""Change tracking for the simulated portal: server generations and `extractChanges`.

With the `change_tracking` behaviour on, the service root says `ChangeTracking`
and every layer has server generations. A generation is the county's version
(`GEN_BASE + version`): it advances on every publish. Whenever a generation is
first shown (service root, layer metadata, an extract), the layer's live object
ids at that version are remembered, so changes since it are exact, whatever
happened in between (publishes, a renumbering republish):

- inserts: live ids the generation did not have;
- updates: ids it had whose edit date is past that version's publish clock;
- deletes: ids it had that are no longer live.

An answer with more changed features than the page limit says
`exceededTransferLimit`; asked again with `returnIdsOnly` it lists ids only.
Faults: `expired_generation` (the server answers that it keeps no changes that
old), `extract_async` (the answer is a job: a status URL that completes on its
second poll, then a result URL).

Signed hooks: `sign()` and `send_hook()` post ArcGIS-style feature-service
webhook payloads to a receiver, signed like ArcGIS signs them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson

from zoningsync.portal.behaviours import Behaviours
from zoningsync.portal.county import DAY_MS, PUBLISH_CLOCK_MS, County, Layer
from zoningsync.portal.query import QueryError, error_body, run_query, truthy

GEN_BASE = 1000
IntArray = npt.NDArray[np.int64]


def server_gen(county: County) -> int:
    return GEN_BASE + county.version


class ChangeTracker:
    """The live object ids of each layer at each generation shown; extract answers.

    Used only from the portal's worker thread, like the county itself. `asked`
    keeps the generation of every extract asked, in order, so a test can tell
    which generation a client stood at (a resumed run must not skip one).
    """

    def __init__(self, county: County) -> None:
        self.county = county
        self.asked: list[int] = []
        self._seen: dict[tuple[int, int], IntArray] = {}
        self._jobs: dict[str, tuple[bytes, int]] = {}
        self._job_ids = itertools.count(1)

    def observe(self) -> int:
        """Remember every layer's live ids at the current generation; return it."""
        for layer in self.county.layers:
            key = (layer.id, self.county.version)
            if key not in self._seen:
                self._seen[key] = np.sort(layer.data["OBJECTID"][layer.live()])
        return server_gen(self.county)

    def service_info(self) -> dict[str, Any]:
        """The service-root members that announce change tracking."""
        gen = self.observe()
        return {
            "capabilities": "Query,ChangeTracking",
            "changeTrackingInfo": {
                "lastSyncDate": PUBLISH_CLOCK_MS + self.county.version * DAY_MS,
                "layerServerGens": [{"id": layer.id, "minServerGen": GEN_BASE,
                                     "serverGen": gen} for layer in self.county.layers],
            },
            "extractChangesCapabilities": {
                "supportsReturnIdsOnly": True, "supportsReturnExtentOnly": False,
                "supportsReturnAttachments": False, "supportsLayerQueries": False,
                "supportsGeometry": False, "supportsReturnFeature": True,
                "supportsFieldsToCompare": False, "supportsServerGens": True,
            },
        }

    def layer_gens(self) -> dict[str, int]:
        return {"minServerGen": GEN_BASE, "serverGen": self.observe()}

    def extract(self, params: Mapping[str, str], behaviours: Behaviours) -> bytes:
        """The answer to one extractChanges request (synchronous or as a job)."""
        gen = self.observe()
        layer, since = self._asked(params)
        self.asked.append(since)
        if behaviours.expired_generation:
            return error_body(400, "Unable to extract changes.", [
                f"The layer server generation {since} is no longer available; the change "
                "history was trimmed."])
        known = self._seen.get((layer.id, since - GEN_BASE))
        if known is None:
            return error_body(400, "Unable to extract changes.",
                              [f"Invalid serverGen {since} for layer {layer.id}."])
        inserts, updates, deletes = self._changes(layer, known, since - GEN_BASE)
        edit: dict[str, Any] = {"id": layer.id}
        answer: dict[str, Any] = {"layerServerGens": [{"id": layer.id, "serverGen": gen}],
                                  "edits": [edit]}
        if truthy(params, "returnIdsOnly"):
            edit["objectIds"] = {"adds": inserts.tolist(), "updates": updates.tolist(),
                                 "deletes": deletes.tolist()}
        elif len(inserts) + len(updates) > behaviours.page_limit():
            answer["exceededTransferLimit"] = True
        else:
            edit["features"] = {"adds": self._features(layer, inserts, behaviours),
                                "updates": self._features(layer, updates, behaviours),
                                "deleteIds": deletes.tolist()}
            answer["spatialReference"] = self.county.spatial_reference
        return orjson.dumps(answer)

    def start_job(self, body: bytes) -> str:
        job = f"j{next(self._job_ids)}"
        self._jobs[job] = (body, 0)
        return job

    def poll_job(self, job: str) -> tuple[str, bytes | None]:
        """A job's status; the second poll finds it completed, with its result."""
        if job not in self._jobs:
            return "failed", None
        body, polls = self._jobs[job]
        self._jobs[job] = (body, polls + 1)
        return ("completed", body) if polls >= 1 else ("pending", None)

    def _asked(self, params: Mapping[str, str]) -> tuple[Layer, int]:
        try:
            layers = orjson.loads(params.get("layers", "[]"))
            gens = orjson.loads(params.get("layerServerGens", "[]"))
            layer_id = int(layers[0])
            since = int(next(g["serverGen"] for g in gens if g["id"] == layer_id))
        except (ValueError, TypeError, IndexError, KeyError, StopIteration) as exc:
            raise QueryError("layerServerGens") from exc
        if not 0 <= layer_id < len(self.county.layers):
            raise QueryError("layers")
        return self.county.layers[layer_id], since

    def _changes(self, layer: Layer, known: IntArray, version: int
                 ) -> tuple[IntArray, IntArray, IntArray]:
        live = layer.live()
        oids = layer.data["OBJECTID"]
        current = np.sort(oids[live])
        inserts = np.setdiff1d(current, known, assume_unique=True)
        deletes = np.setdiff1d(known, current, assume_unique=True)
        edited = live & (layer.data["LAST_EDITED_DATE"] > PUBLISH_CLOCK_MS + version * DAY_MS)
        updates = np.intersect1d(oids[edited], known, assume_unique=True)
        return inserts, updates, deletes

    def _features(self, layer: Layer, oids: IntArray, behaviours: Behaviours
                  ) -> list[Any]:
        if not len(oids):
            return []
        answer = orjson.loads(run_query(self.county, layer, {
            "f": "json", "objectIds": ",".join(map(str, oids.tolist())), "outFields": "*",
        }, behaviours))
        features: list[Any] = answer["features"]
        return features


def sign(body: bytes, secret: str) -> str:
    """The `x-esriHook-Signature` of a body: sha256= and the base64 of its HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def hook_payload(service_url: str, layer_id: int, generations: Sequence[int]) -> bytes:
    """A feature-service webhook payload as ArcGIS sends it: a list of one event."""
    return orjson.dumps([{
        "name": "zoningsync-portal", "layerId": layer_id, "orgId": "simulated",
        "serviceName": "Wake", "lastUpdatedTime": PUBLISH_CLOCK_MS,
        "changesUrl": (f"{service_url}/extractChanges?serverGens="
                       f"[{','.join(map(str, generations))}]&async=true&returnUpdates=true"
                       "&returnDeletes=true&returnAttachments=false"),
        "events": ["FeaturesCreated", "FeaturesUpdated", "FeaturesDeleted"],
    }])


async def send_hook(session: aiohttp.ClientSession, url: str, body: bytes,
                    secret: str | None) -> int:
    """POST one hook to a receiver, signed when a secret is given; its HTTP status."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["x-esriHook-Signature"] = sign(body, secret)
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status
