"""How the simulated portal misbehaves, like the county servers zoningsync meets.

`Behaviours` is a mutable dataclass: set fields at start (`--behaviour key=value`),
from a test (`portal.behaviours.silent_cap = 70`) or over HTTP
(`POST /_portal/behaviour {"key": value}`); the server reads it on every request.
Random faults are drawn from `random.Random(seed)` so a test sees the same faults
in the same order on every run (reset the draw with `reseed()`).

Faults, in the order one draw is split between them: `http_429_rate` and
`http_503_rate` (with `Retry-After: retry_after_s`), `error_json_rate` (HTTP 200
with error JSON), `html_rate` (HTTP 200 text/html firewall page), `truncate_rate`
(half the real body, then the connection closes). These apply to the ArcGIS routes.

Change tracking (`zoningsync.portal.changes`): `change_tracking` announces it
on the service root and answers `extractChanges`; `expired_generation` makes
extractChanges answer that the generation asked from is too old;
`extract_async` makes it answer with a job to poll; `service_root_error` makes
the service root (`.../FeatureServer`) answer error JSON.

The planning site has two of its own: `cases_layout_changed` (the case list comes
out of a redesign: its table has another id and no rows a scraper's selector
finds) and `slow_pdf_ms` (each agenda PDF trickles out over that many ms).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from zoningsync.errors import UsageError


class Fault(Enum):
    TOO_MANY = "429"
    UNAVAILABLE = "503"
    ERROR_JSON = "error_json"
    HTML = "html"
    TRUNCATE = "truncate"


class BehaviourError(UsageError):
    """A behaviour key or value the portal does not know."""


@dataclass
class Behaviours:
    """Every knob of the portal; the defaults are a well-behaved ArcGIS 10.9 server."""

    pagination: bool = True
    max_record_count: int = 2000
    silent_cap: int = 0
    error_json_rate: float = 0.0
    http_429_rate: float = 0.0
    http_503_rate: float = 0.0
    retry_after_s: int = 1
    truncate_rate: float = 0.0
    html_rate: float = 0.0
    latency_ms: int = 0
    require_token: str = ""
    timestamp_literals: bool = True
    edit_tracking: bool = True
    no_oid_field_name: bool = False
    geojson: bool = True
    change_tracking: bool = False
    expired_generation: bool = False
    extract_async: bool = False
    service_root_error: bool = False
    cases_layout_changed: bool = False
    slow_pdf_ms: int = 0
    seed: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._random.seed(self.seed)

    def update(self, values: dict[str, Any]) -> None:
        """Set behaviours from JSON or `key=value` strings; a new seed restarts the draw."""
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        for key, raw in values.items():
            if key not in known:
                raise BehaviourError(
                    f"unknown behaviour {key!r}; known: {', '.join(sorted(known))}")
            setattr(self, key, _coerce(key, getattr(self, key), raw))
        if "seed" in values:
            self.reseed()

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def draw_fault(self) -> Fault | None:
        """One seeded draw per request: which fault, if any, this request meets."""
        draw = self._random.random()
        for rate, fault in ((self.http_429_rate, Fault.TOO_MANY),
                            (self.http_503_rate, Fault.UNAVAILABLE),
                            (self.error_json_rate, Fault.ERROR_JSON),
                            (self.html_rate, Fault.HTML),
                            (self.truncate_rate, Fault.TRUNCATE)):
            if draw < rate:
                return fault
            draw -= rate
        return None

    def advertised_max_record_count(self) -> int:
        """A silent cap hides behind a larger maxRecordCount, as such servers do."""
        if self.silent_cap:
            return max(self.max_record_count, self.silent_cap * 4)
        return self.max_record_count

    def page_limit(self) -> int:
        return min(self.max_record_count, self.silent_cap or self.max_record_count)


def _coerce(key: str, current: Any, raw: Any) -> Any:
    if isinstance(current, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise BehaviourError(f"behaviour {key} wants true or false, not {raw!r}")
    try:
        value = type(current)(raw)
    except (TypeError, ValueError) as exc:
        raise BehaviourError(f"behaviour {key} wants a {type(current).__name__}, "
                             f"not {raw!r}") from exc
    if isinstance(value, int | float) and value < 0:
        raise BehaviourError(f"behaviour {key} cannot be negative")
    return value
