"""The county's agenda PDFs, drawn with fpdf2 from the current cases.

Each document is a different problem a PDF reader meets on real county sites:
the planning-commission agenda is prose (the next hearings, then the cases
under review), one case per item (`Case Z-2024-017
4521 HILLSBOROUGH ST`, then the title, then detail lines), and always has one item
that runs across a page break (within its description: an item's case line and
title line never part); the hearing schedule is a ruled table spanning
pages with its header row repeated on each; the scanned agenda is one image and no
text layer; the council agenda is encrypted (it opens only with
`COUNCIL_USER_PASSWORD`); the minutes are a real PDF cut off in the middle.

Every document is a pure function of the cases (the creation date is the portal's
publish clock), so unchanged content gives the same bytes and the same ETag.
Drawing costs tens of milliseconds: callers build each document once per publish,
in a worker thread.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from datetime import date

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from zoningsync.portal.cases import (
    APPROVED,
    CONTINUED,
    COUNCIL_AGENDA,
    DENIED,
    HEARING_SCHEDULE,
    MINUTES,
    PROSE_AGENDA,
    SCANNED_AGENDA,
    SCHEDULED,
    UNDER_REVIEW,
    Case,
    Cases,
)
from zoningsync.portal.county import ZONES

COUNCIL_OWNER_PASSWORD = "clerk-owner-2024"
COUNCIL_USER_PASSWORD = "council-2024"
SCHEDULE_COLUMNS = ("Case Number", "Address", "Request", "From", "To", "Hearing Date", "Status")
SCHEDULE_WIDTHS = (30, 62, 52, 18, 18, 36, 43)
LINE_MM = 5.5
MAX_PADDING_LINES = 14   # more than an item's height
SCAN_SIZE_PX = (1275, 1650)   # a letter page at 150 dpi
SCANNED_CASES = 20
ZONE_NAMES = dict(ZONES)


def long_date(day: date) -> str:
    return day.strftime("%B %d, %Y")


class _Agenda(FPDF):
    """A letter page with a running footer, as a clerk's word processor prints it."""

    def __init__(self, footer_text: str, orientation: str = "P") -> None:
        super().__init__(orientation=orientation, unit="mm", format="letter")
        self.footer_text = footer_text
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(14, 14, 14)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("Helvetica", size=8)
        self.cell(0, 5, f"{self.footer_text} - Page {self.page_no()}", align="C")


def _new(cases: Cases, footer: str, orientation: str = "P") -> _Agenda:
    pdf = _Agenda(footer, orientation)
    pdf.set_creation_date(cases.clock)
    pdf.set_title(footer)
    pdf.set_author("Wake County Planning Department (simulated)")
    pdf.add_page()
    return pdf


def _line(pdf: FPDF, text: str, *, bold: bool = False, size: float = 11) -> None:
    pdf.set_font("Helvetica", style="B" if bold else "", size=size)
    pdf.multi_cell(0, LINE_MM, _latin1(text), align="L", new_x="LMARGIN", new_y="NEXT")


def _latin1(text: str) -> str:
    """The core fonts draw Latin-1 only; anything else would abort the drawing."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _description(case: Case) -> str:
    pins = ", ".join(case.parcel_ids) or "none recorded"
    recommendation = {SCHEDULED: "recommends approval subject to the conditions offered",
                      CONTINUED: "requests that the hearing continue to allow revised "
                                 "conditions"}.get(case.status, "has completed its review")
    return (f"The applicant requests to rezone approximately {case.acreage:.2f} acres at "
            f"{case.address} (PINs: {pins}) from {ZONE_NAMES.get(case.from_zoning, '')} "
            f"({case.from_zoning}) to {ZONE_NAMES.get(case.to_zoning, '')} "
            f"({case.to_zoning}). Staff reviewed the request for consistency with the "
            f"Comprehensive Plan and the Future Land Use Map, and {recommendation}.")


def _items(pdf: FPDF, cases: Iterable[Case]) -> dict[str, tuple[int, int]]:
    """One agenda item per case; answers the first and last page of each item."""
    pages: dict[str, tuple[int, int]] = {}
    for case in cases:
        if pdf.will_page_break(LINE_MM * 3):
            pdf.add_page()   # an item's case line and title line stay on one page
        first = pdf.page_no()
        _line(pdf, f"Case {case.number}  {case.address}", bold=True)
        _line(pdf, case.title)
        _line(pdf, f"Applicant: {case.applicant}    Type: {case.case_type}")
        _line(pdf, _description(case), size=10)
        hearing = long_date(case.hearing) if case.hearing else "not scheduled"
        _line(pdf, f"Hearing: {hearing}.    Status: {case.status}.")
        pdf.ln(LINE_MM / 2)
        pages[case.number] = (first, pdf.page_no())
    return pages


def hearing_items(cases: Cases) -> list[Case]:
    return sorted((c for c in cases.cases if c.status in (SCHEDULED, CONTINUED)),
                  key=lambda c: c.number)


def review_items(cases: Cases) -> list[Case]:
    return sorted((c for c in cases.cases if c.status == UNDER_REVIEW), key=lambda c: c.number)


def agenda_cases(cases: Cases) -> list[Case]:
    """The prose agenda's items in order: the hearings, then the cases under review."""
    return hearing_items(cases) + review_items(cases)


def prose_agenda(cases: Cases) -> bytes:
    """The next meeting's agenda; padded so that some item runs across a page break
    (when there are items enough to fill a page)."""
    best = b""
    for padding in range(MAX_PADDING_LINES):
        meeting = long_date(cases.next_meeting)
        pdf = _new(cases, f"Planning Commission Agenda - {meeting}")
        _line(pdf, "WAKE COUNTY PLANNING COMMISSION", bold=True, size=14)
        _line(pdf, f"Regular Meeting - {meeting}, 6:00 PM")
        _line(pdf, "Council Chambers, 1 Exchange Plaza, Raleigh, NC")
        pdf.ln(LINE_MM * (1 + padding))
        _line(pdf, "1. Call to order and roll call")
        _line(pdf, "2. Approval of the minutes of the previous meeting")
        _line(pdf, "3. Public hearings", bold=True)
        pdf.ln(LINE_MM / 2)
        pages = _items(pdf, hearing_items(cases))
        _line(pdf, "4. Applications under staff review (for information)", bold=True)
        pdf.ln(LINE_MM / 2)
        pages |= _items(pdf, review_items(cases))
        _line(pdf, "5. Other business")
        _line(pdf, "6. Adjournment")
        best = bytes(pdf.output())
        if any(first != last for first, last in pages.values()):
            return best
    return best


def schedule_cases(cases: Cases) -> list[Case]:
    return sorted((c for c in cases.cases if HEARING_SCHEDULE in c.documents),
                  key=lambda c: (c.hearing or date.min, c.number))


def hearing_schedule(cases: Cases) -> bytes:
    """Every case with a hearing, as a ruled table whose header repeats on each page."""
    pdf = _new(cases, f"Public Hearing Schedule - as of {long_date(cases.today)}", "L")
    _line(pdf, "WAKE COUNTY PUBLIC HEARING SCHEDULE", bold=True, size=14)
    _line(pdf, f"Planning Commission and City Council, as of {long_date(cases.today)}")
    pdf.ln(LINE_MM)
    pdf.set_font("Helvetica", size=9)
    with pdf.table(col_widths=SCHEDULE_WIDTHS, repeat_headings=1, line_height=6,
                   text_align="LEFT") as table:
        header = table.row()
        for column in SCHEDULE_COLUMNS:
            header.cell(column)
        for case in schedule_cases(cases):
            row = table.row()
            hearing = long_date(case.hearing) if case.hearing else ""
            for value in (case.number, case.address, case.case_type, case.from_zoning,
                          case.to_zoning, hearing, case.status):
                row.cell(_latin1(value))
    return bytes(pdf.output())


def council_cases(cases: Cases) -> list[Case]:
    return sorted((c for c in cases.cases if COUNCIL_AGENDA in c.documents),
                  key=lambda c: c.number)


def council_agenda(cases: Cases) -> bytes:
    """The council's decisions, readable only with the user password."""
    pdf = _new(cases, "City Council Agenda - Zoning Decisions")
    pdf.set_encryption(owner_password=COUNCIL_OWNER_PASSWORD,
                       user_password=COUNCIL_USER_PASSWORD)
    _line(pdf, "CITY COUNCIL - ZONING DECISIONS", bold=True, size=14)
    pdf.ln(LINE_MM)
    _items(pdf, council_cases(cases))
    return bytes(pdf.output())


def minutes(cases: Cases) -> bytes:
    """The commission's minutes, cut off halfway as by a failed upload."""
    pdf = _new(cases, "Planning Commission Minutes")
    _line(pdf, "MINUTES OF THE WAKE COUNTY PLANNING COMMISSION", bold=True, size=14)
    pdf.ln(LINE_MM)
    decided = [c for c in cases.cases if c.status in (APPROVED, DENIED)]
    _items(pdf, sorted(decided, key=lambda c: c.number))
    whole = bytes(pdf.output())
    return whole[: len(whole) // 2]


def scanned_agenda(cases: Cases) -> bytes:
    """A photocopied agenda: the words are pixels of one image, there is no text layer."""
    image = Image.new("L", SCAN_SIZE_PX, color=246)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    speckle = random.Random(cases.seed)
    for _ in range(400):
        x, y = speckle.randrange(SCAN_SIZE_PX[0]), speckle.randrange(SCAN_SIZE_PX[1])
        draw.point((x, y), fill=speckle.randrange(120, 200))
    draw.text((110, 100), "WAKE COUNTY PLANNING COMMISSION - AGENDA (ARCHIVE COPY)",
              fill=20, font=font)
    for i, case in enumerate(sorted(cases.cases, key=lambda c: c.serial)[:SCANNED_CASES]):
        draw.text((110, 160 + 60 * i), f"Case {case.number}  {case.address}", fill=30,
                  font=font)
        draw.text((130, 180 + 60 * i), case.title, fill=40, font=font)
    pdf = FPDF(unit="mm", format="letter")
    pdf.set_creation_date(cases.clock)
    pdf.add_page()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    pdf.image(io.BytesIO(buffer.getvalue()), x=0, y=0, w=pdf.w, h=pdf.h)
    return bytes(pdf.output())


BUILDERS: dict[str, Callable[[Cases], bytes]] = {
    PROSE_AGENDA: prose_agenda,
    HEARING_SCHEDULE: hearing_schedule,
    COUNCIL_AGENDA: council_agenda,
    SCANNED_AGENDA: scanned_agenda,
    MINUTES: minutes,
}
