"""Rezoning cases of the simulated county, tied to its parcels, moving on publish.

`Cases(county, count, seed)` is a pure function of the county's current parcels
and the seed: each case names the PINs, address, zoning and acreage of real
parcels, except that about one case in ten names only its address (no PINs) and
about one in seventeen names a PIN no parcel has (`unknown_parcel_ids`). Exactly
one applicant has an accented name ("René Dupré Holdings LLC"), on the newest case,
so the windows-1252 case list has a non-ASCII byte on its first page.

The portal's clock starts on `TODAY_ZERO`; the planning commission meets every
other Tuesday. `publish()` moves the clock one meeting on and the cases with it:
hearings that passed end Approved, Denied or Continued, some filed cases go under
review and some under review get scheduled, two or three cases are filed and one
open case is withdrawn. Every change stamps the case's `modified` time (what
Legistar calls MatterLastModifiedUtc) with the publish clock; other cases keep
theirs, so pages and documents that show only unchanged cases keep their ETag.

`expected()` is the ground truth an integration test checks extraction against.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from zoningsync.portal.county import OWNER_LABELS, ZONES, County

PLANNING_PATH = "/planning"
CASES_PATH = PLANNING_PATH + "/cases"
AGENDAS_PATH = PLANNING_PATH + "/agendas"

FILED = "Filed"
UNDER_REVIEW = "Under Review"
SCHEDULED = "Scheduled for Hearing"
CONTINUED = "Continued"
APPROVED = "Approved by Council"
DENIED = "Denied"
WITHDRAWN = "Withdrawn"
STATUSES = (FILED, UNDER_REVIEW, SCHEDULED, CONTINUED, APPROVED, DENIED, WITHDRAWN)
STATUS_CLASS = {FILED: "pending", UNDER_REVIEW: "pending", SCHEDULED: "pending",
                CONTINUED: "pending", APPROVED: "approved", DENIED: "denied",
                WITHDRAWN: "withdrawn"}
INITIAL_WEIGHTS = (10, 20, 25, 8, 25, 7, 5)
OPEN = frozenset({FILED, UNDER_REVIEW, SCHEDULED, CONTINUED})

GENERAL_USE = "General Use Rezoning"
CONDITIONAL_USE = "Conditional Use Rezoning"
PLANNED_DEVELOPMENT = "Planned Development"
CASE_TYPES = (GENERAL_USE, CONDITIONAL_USE, PLANNED_DEVELOPMENT)
CASE_TYPE_WEIGHTS = (6, 3, 1)

# The documents a case can appear in (file names under AGENDAS_PATH).
PROSE_AGENDA = "planning-commission-agenda.pdf"   # hearings and cases in review, prose
HEARING_SCHEDULE = "hearing-schedule.pdf"          # every case with a hearing, a table
COUNCIL_AGENDA = "council-agenda.pdf"              # decided cases; encrypted
SCANNED_AGENDA = "scanned-agenda.pdf"              # an image of a page, no text layer
MINUTES = "commission-minutes.pdf"                 # a real PDF cut off in the middle
MISSING = "missing.pdf"                            # an HTML error page answered with 200

TODAY_ZERO = date(2024, 8, 30)
FIRST_MEETING = date(2024, 1, 9)   # a Tuesday
MEETING_EVERY = timedelta(days=14)
PUBLISH_HOUR = time(18, 30)
ACCENTED_APPLICANT = "René Dupré Holdings LLC"
DEVELOPERS = ("Triangle Holdings LLC", "Oak City Properties LLC", "Capital Area Homes Inc",
              "Neuse River Partners LP", "Crabtree Development Group", "Walnut Creek Land Co",
              "Pullen Park Ventures LLC", "Falls Lake Builders Inc")
ADDRESS_ONLY_EVERY = 10
UNKNOWN_PIN_EVERY = 17
PIN_BASE = 794_000_000
PIN_BLOCK = 7


@dataclass
class Case:
    """One rezoning case as the county knows it."""

    number: str
    serial: int           # order of generation: stable, the source of the matter id
    case_type: str
    status: str
    filed: date
    hearing: date | None
    decided: date | None
    from_zoning: str
    to_zoning: str
    acreage: float
    address: str
    applicant: str
    parcel_ids: tuple[str, ...]
    unknown_parcel_ids: tuple[str, ...]
    modified: datetime
    revision: int = 1

    @property
    def title(self) -> str:
        verb = "Rezoning" if self.case_type == GENERAL_USE else self.case_type
        return f"{verb} of {street_case(self.address)} from {self.from_zoning} " \
               f"to {self.to_zoning}"

    @property
    def matter_id(self) -> int:
        return 4000 + 2 * self.serial

    @property
    def status_class(self) -> str:
        return STATUS_CLASS[self.status]

    @property
    def detail_path(self) -> str:
        return f"{CASES_PATH}/{self.number}"

    @property
    def documents(self) -> tuple[str, ...]:
        """Names of the agenda documents that list this case."""
        names = []
        if self.status in (SCHEDULED, CONTINUED, UNDER_REVIEW):
            names.append(PROSE_AGENDA)
        if self.hearing is not None:
            names.append(HEARING_SCHEDULE)
        if self.status in (APPROVED, DENIED):
            names.append(COUNCIL_AGENDA)
        return tuple(names)


def street_case(address: str) -> str:
    """'4521 HILLSBOROUGH ST' → '4521 Hillsborough St', as staff type titles."""
    return " ".join(word.capitalize() for word in address.split())


def meeting_on_or_after(day: date) -> date:
    waited = (day - FIRST_MEETING).days
    return FIRST_MEETING + MEETING_EVERY * max(0, -(-waited // MEETING_EVERY.days))


def meeting_after(day: date) -> date:
    return meeting_on_or_after(day + timedelta(days=1))


class Cases:
    """The county's rezoning cases, oldest first; mutate only through `publish()`."""

    def __init__(self, county: County, count: int = 60, seed: int = 1) -> None:
        if count < 1:
            raise ValueError("a county needs at least one case")
        self.county = county
        self.seed = seed
        self.version = 0
        self.today = TODAY_ZERO
        self._serials = 0
        self._sequences: dict[int, int] = {}
        rng = random.Random(f"cases:{county.seed}:{seed}")
        drafts = [self._draft(rng, row) for row in self._pick_parcels(rng, count)]
        drafts.sort(key=lambda case: (case.filed, case.serial))
        for case in drafts:
            case.number = self._number(case.filed, rng)
        drafts[-1].applicant = ACCENTED_APPLICANT
        self.cases = drafts

    # -- queries ---------------------------------------------------------------------

    @property
    def next_meeting(self) -> date:
        return meeting_after(self.today)

    @property
    def clock(self) -> datetime:
        """When the current version was published (Last-Modified of what it changed)."""
        return datetime.combine(self.today, PUBLISH_HOUR, UTC)

    def newest_first(self) -> list[Case]:
        return sorted(self.cases, key=lambda case: (case.filed, case.number), reverse=True)

    def find(self, number: str) -> Case | None:
        return next((case for case in self.cases if case.number == number), None)

    def expected(self) -> list[dict[str, Any]]:
        """Every case with every field as the portal knows it, oldest first."""
        return [{
            "case_number": case.number, "title": case.title, "case_type": case.case_type,
            "status": case.status, "status_class": case.status_class,
            "filed_at": case.filed, "hearing_at": case.hearing, "decided_at": case.decided,
            "from_zoning": case.from_zoning, "to_zoning": case.to_zoning,
            "acreage": case.acreage, "address": case.address, "applicant": case.applicant,
            "parcel_ids": list(case.parcel_ids),
            "unknown_parcel_ids": list(case.unknown_parcel_ids),
            "detail_url": case.detail_path,
            "documents": [f"{AGENDAS_PATH}/{name}" for name in case.documents],
            "matter_id": case.matter_id, "modified": case.modified,
        } for case in self.cases]

    # -- versions --------------------------------------------------------------------

    def publish(self) -> dict[str, Any]:
        """The next meeting passes: cases move on; answers what changed, by case number."""
        self.version += 1
        self.today += MEETING_EVERY
        rng = random.Random(f"publish:{self.county.seed}:{self.seed}:{self.version}")
        changed: dict[str, str] = {}
        for case in self.cases:
            before = (case.status, case.hearing, case.decided)
            self._advance(case, rng)
            if (case.status, case.hearing, case.decided) != before:
                changed[case.number] = case.status
        candidates = [c for c in self.cases if c.status in (FILED, UNDER_REVIEW)
                      and c.number not in changed]
        withdrawn = []
        if candidates:
            case = rng.choice(candidates)
            case.status, case.hearing, case.decided = WITHDRAWN, None, self.today
            changed[case.number] = WITHDRAWN
            withdrawn.append(case.number)
        filed = []
        for row in self._pick_parcels(rng, rng.randint(2, 3)):
            case = self._draft(rng, row, status=FILED)
            case.filed = self.today - timedelta(days=rng.randint(0, 13))
            case.number = self._number(case.filed, rng)
            self.cases.append(case)
            filed.append(case.number)
            changed[case.number] = FILED
        for offset, case in enumerate(c for c in self.cases if c.number in changed):
            case.modified = self.clock + timedelta(seconds=offset, milliseconds=137 * offset)
            case.revision += 1
        return {"version": self.version, "today": self.today.isoformat(),
                "next_meeting": self.next_meeting.isoformat(), "changed": changed,
                "filed": filed, "withdrawn": withdrawn}

    def _advance(self, case: Case, rng: random.Random) -> None:
        if case.status in (SCHEDULED, CONTINUED) and case.hearing is not None \
                and case.hearing <= self.today:
            draw = rng.random()
            if draw < 0.6:
                case.status = APPROVED
                case.decided = min(case.hearing + timedelta(days=7), self.today)
            elif draw < 0.75:
                case.status, case.decided = DENIED, case.hearing
            else:
                case.status, case.hearing = CONTINUED, self.next_meeting
        elif case.status == UNDER_REVIEW and rng.random() < 0.5:
            case.status, case.hearing = SCHEDULED, self.next_meeting
        elif case.status == FILED and rng.random() < 0.6:
            case.status = UNDER_REVIEW

    # -- generation ------------------------------------------------------------------

    def _pick_parcels(self, rng: random.Random, count: int) -> list[int]:
        live = np.nonzero(self.county.parcels.live())[0]
        return sorted(int(live[i]) for i in rng.sample(range(len(live)), min(count, len(live))))

    def _draft(self, rng: random.Random, row: int, status: str | None = None) -> Case:
        """A case on the parcel `row` (and maybe its next neighbours); number comes later."""
        parcels = self.county.parcels
        data = parcels.data
        rows = [r for r in range(row, min(row + rng.choice((1, 1, 1, 2, 3)), parcels.size))
                if not parcels.deleted[r]]
        index = np.array(rows, dtype=np.int64)
        pins = tuple(parcels.columns["PIN"].serve(index))
        address = str(parcels.columns["SITE_ADDRESS"].serve(index[:1])[0]).strip()
        from_zone = int(data["ZONING"][row])
        case_type = rng.choices(CASE_TYPES, weights=CASE_TYPE_WEIGHTS)[0]
        to_zone = (from_zone + rng.randint(1, len(ZONES) - 1)) % len(ZONES)
        to_zoning = "PD" if case_type == PLANNED_DEVELOPMENT else ZONES[to_zone][0]
        if to_zoning == ZONES[from_zone][0]:
            to_zoning = ZONES[(from_zone + 1) % len(ZONES)][0]
        serial = self._serials
        self._serials += 1
        unknown: tuple[str, ...] = ()
        if serial % ADDRESS_ONLY_EVERY == 4:
            pins = ()
        elif serial % UNKNOWN_PIN_EVERY == 5:
            unknown = (_unknown_pin(pins[0]),)
            pins = (*pins, *unknown)
        owner = (OWNER_LABELS[int(data["OWNER"][row])] or "").strip()
        applicant = owner if rng.random() < 0.6 else rng.choice(DEVELOPERS)
        state = status or rng.choices(STATUSES, weights=INITIAL_WEIGHTS)[0]
        filed, hearing, decided = self._dates(rng, state)
        last = decided or min(self.today, filed + timedelta(days=rng.randint(0, 30)))
        modified = datetime.combine(last, time(14), UTC) + timedelta(
            seconds=rng.randint(0, 3 * 3600), milliseconds=rng.randint(0, 999))
        return Case(number="", serial=serial, case_type=case_type, status=state, filed=filed,
                    hearing=hearing, decided=decided, from_zoning=ZONES[from_zone][0],
                    to_zoning=to_zoning, acreage=round(float(data["ACRES"][index].sum()), 2),
                    address=address, applicant=applicant, parcel_ids=pins,
                    unknown_parcel_ids=unknown, modified=modified)

    def _dates(self, rng: random.Random, status: str) -> tuple[date, date | None, date | None]:
        """Filed, hearing and decision dates that agree with the status and the clock."""
        def ago(lo: int, hi: int) -> date:
            return self.today - timedelta(days=rng.randint(lo, hi))

        if status == FILED:
            return ago(1, 20), None, None
        if status == UNDER_REVIEW:
            return ago(21, 60), None, None
        if status in (SCHEDULED, CONTINUED):
            return (ago(45, 120) if status == SCHEDULED else ago(75, 200)), \
                self.next_meeting, None
        if status == WITHDRAWN:
            filed = ago(30, 200)
            return filed, None, filed + timedelta(days=rng.randint(10, 29))
        filed = ago(90, 300)
        hearing = meeting_on_or_after(filed + timedelta(days=45 + rng.randint(0, 20)))
        return filed, hearing, hearing + timedelta(days=7 if status == APPROVED else 0)

    def _number(self, filed: date, rng: random.Random) -> str:
        """Z-YYYY-NNN: numbered in filing order within a year, from where the year was."""
        if filed.year not in self._sequences:
            self._sequences[filed.year] = 0 if filed.year >= TODAY_ZERO.year \
                else rng.randint(30, 60)
        self._sequences[filed.year] += 1
        return f"Z-{filed.year}-{self._sequences[filed.year]:03d}"


def _unknown_pin(pin: str) -> str:
    """A PIN in `pin`'s block that no parcel has (each parcel owns one block of 7)."""
    offset = int(pin) - PIN_BASE
    block, own = divmod(offset, PIN_BLOCK)
    return f"{PIN_BASE + block * PIN_BLOCK + (own + 3) % PIN_BLOCK:010d}"
