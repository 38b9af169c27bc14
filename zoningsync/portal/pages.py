"""The planning department's HTML pages, written the way county portals write them.

The case list (`/planning/cases?page=N`, 20 cases a page, newest first) is served
in windows-1252 and carries what scrapers trip on: `&nbsp;` in empty cells, the
header row repeated once inside `<tbody>`, one row whose Status cell spans the
Hearing Date column (`colspan="2"`: the first case on the page with no hearing),
relative links (`a.case-link` to the detail page, `a[rel=next]` to the next page)
and the next meeting date in `<span id="meeting-date">` (MM/DD/YYYY). With
`layout_changed` the same page comes out of a redesign: the table has another id
and no rows of the old shape, as when a vendor upgrade breaks every selector.

Detail pages (UTF-8) hold one `<dl class="case-details">` and links to the agendas
that list the case; the agenda index links every PDF, good and bad.
"""

from __future__ import annotations

from datetime import date
from html import escape

from zoningsync.portal.cases import (
    COUNCIL_AGENDA,
    HEARING_SCHEDULE,
    MINUTES,
    MISSING,
    PROSE_AGENDA,
    SCANNED_AGENDA,
    Case,
    Cases,
)

PAGE_SIZE = 20
REPEATED_HEADER_AT = 10
LIST_CHARSET = "windows-1252"
LIST_COLUMNS = ("Case Number", "Filed", "Type", "Title", "From", "To", "Location", "PINs",
                "Applicant", "Acres", "Status", "Hearing Date")
DOCUMENT_TITLES = {
    PROSE_AGENDA: "Planning Commission agenda",
    HEARING_SCHEDULE: "Public hearing schedule",
    COUNCIL_AGENDA: "City Council agenda (zoning decisions)",
    SCANNED_AGENDA: "Planning Commission agenda, archive scan",
    MINUTES: "Planning Commission minutes",
    MISSING: "Planning Commission agenda, previous meeting",
}
NBSP = "&nbsp;"
ROBOTS_TXT = (b"# Wake County Planning (simulated)\n"
              b"User-agent: *\n"
              b"Allow: /planning\n"
              b"Allow: /legistar\n"
              b"Disallow: /private\n"
              b"Disallow: /_portal\n")
NOT_PDF_PAGE = (b"<!DOCTYPE html><html><head><title>Document Not Found</title></head><body>"
                b"<h1>We're sorry, the document you requested is not available.</h1>"
                b"<p>It may have been moved or removed. Please return to the "
                b"<a href=\"/planning/agendas\">agenda index</a>.</p></body></html>"
                )


def page_count(cases: Cases) -> int:
    return max(1, -(-len(cases.cases) // PAGE_SIZE))


def _shell(title: str, body: str, charset: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"{charset}\">"
            f"<title>{escape(title)} | Wake County Planning</title></head>\n<body>\n"
            "<div id=\"header\"><a href=\"/planning\">Planning &amp; Development</a> "
            "| <a href=\"/planning/cases\">Rezoning Cases</a> "
            "| <a href=\"/planning/agendas\">Agendas</a></div>\n"
            f"<div id=\"content\">\n{body}\n</div>\n"
            "<div id=\"footer\">&copy; Wake County (simulated) &middot; "
            "<a href=\"/private/staff\">Staff login</a></div>\n</body></html>\n")


def _cell(text: str, css: str = "") -> str:
    attrs = f' class="{css}"' if css else ""
    return f"<td{attrs}>{escape(text) if text else NBSP}</td>"


def _row(case: Case, merged: bool) -> str:
    link = f'<a class="case-link" href="cases/{escape(case.number)}">{escape(case.number)}</a>'
    location = f"Rezoning request at {case.address} - App No {case.serial + 1000}"
    cells = [f"<td>{link}</td>", _cell(case.filed.strftime("%m/%d/%Y")),
             _cell(case.case_type), _cell(case.title), _cell(case.from_zoning),
             _cell(case.to_zoning), _cell(location), _cell("; ".join(case.parcel_ids), "pins"),
             _cell(case.applicant), _cell(f"{case.acreage:.2f}")]
    if merged:
        cells.append(f'<td colspan="2">{escape(case.status)}</td>')
    else:
        hearing = case.hearing.strftime("%B %d, %Y") if case.hearing else ""
        cells += [_cell(case.status), _cell(hearing)]
    return "<tr>" + "".join(cells) + "</tr>"


def case_list(cases: Cases, page: int, *, layout_changed: bool = False) -> bytes:
    """Page `page` (1-based) of the case list, encoded in windows-1252."""
    shown = cases.newest_first()[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    merged = next((c.number for c in shown if c.hearing is None), None)
    header = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in LIST_COLUMNS) + "</tr>"
    rows = [_row(case, case.number == merged) for case in shown]
    if len(rows) > REPEATED_HEADER_AT:
        rows.insert(REPEATED_HEADER_AT, header)
    nav = [f'<span class="pager">Page {page} of {page_count(cases)}</span>']
    if page > 1:
        nav.append(f'<a rel="prev" href="cases?page={page - 1}">&lsaquo; Previous</a>')
    if page < page_count(cases):
        nav.append(f'<a rel="next" href="cases?page={page + 1}">Next \u203a</a>')
    meeting = cases.next_meeting.strftime("%m/%d/%Y")
    if layout_changed:
        table = ('<div class="grid" id="case-search-results" role="table">'
                 + "".join(f'<div role="row" data-case="{escape(c.number)}">'
                           f'<span role="cell">{escape(c.number)}</span>'
                           f'<span role="cell">{escape(c.title)}</span></div>' for c in shown)
                 + "</div>")
    else:
        table = ('<table id="cases" class="results">\n<thead>' + header + "</thead>\n<tbody>\n"
                 + "\n".join(rows) + "\n</tbody>\n</table>")
    body = ("<h1>Rezoning Cases</h1>\n"
            f'<p>Next Planning Commission meeting: <span id="meeting-date">{meeting}</span></p>\n'
            f"{table}\n<div class=\"pagination\">{' '.join(nav)}</div>")
    return _shell("Rezoning Cases", body, LIST_CHARSET).encode(LIST_CHARSET)


def _when(day: date | None) -> str:
    return day.strftime("%m/%d/%Y") if day else ""


def case_detail(case: Case) -> bytes:
    """One case's page (UTF-8): every field in a definition list, and its agendas."""
    fields = (("Case Number", case.number), ("Title", case.title), ("Type", case.case_type),
              ("Status", case.status), ("Applicant", case.applicant),
              ("Address", case.address), ("PINs", ", ".join(case.parcel_ids)),
              ("Acreage", f"{case.acreage:.2f}"), ("Current Zoning", case.from_zoning),
              ("Requested Zoning", case.to_zoning), ("Filed", _when(case.filed)),
              ("Hearing Date", _when(case.hearing)), ("Decision Date", _when(case.decided)))
    items = "\n".join(f"<dt>{escape(k)}</dt><dd>{escape(v) if v else NBSP}</dd>"
                      for k, v in fields)
    links = "\n".join(f'<li><a href="../agendas/{name}">{escape(DOCUMENT_TITLES[name])} '
                      f"(PDF)</a></li>" for name in case.documents)
    body = (f"<h1>Case {escape(case.number)}</h1>\n<dl class=\"case-details\">\n{items}\n</dl>"
            f"\n<h2>Documents</h2>\n<ul class=\"documents\">\n{links}\n</ul>\n"
            '<p><a href="../cases">Back to the case list</a></p>')
    return _shell(f"Case {case.number}", body, "utf-8").encode()


def agenda_index(cases: Cases) -> bytes:
    """Every agenda document, with the meeting it belongs to."""
    meeting = cases.next_meeting.strftime("%B %d, %Y")
    links = "\n".join(f'<li><a href="agendas/{name}">{escape(title)}</a></li>'
                      for name, title in DOCUMENT_TITLES.items())
    body = (f"<h1>Agendas and Minutes</h1>\n<p>Next meeting: {meeting}</p>\n"
            f'<ul id="agendas">\n{links}\n</ul>')
    return _shell("Agendas", body, "utf-8").encode()
