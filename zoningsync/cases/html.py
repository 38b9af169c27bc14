"""Cases out of a county portal's HTML: list pages, their detail pages, the layout guard.

Pure: bytes in, values out; the producer fetches. Field forms (see
`options.FieldSpec`) are read the same way on a list row and on a detail page
(where the whole page is the row). Tables are expanded into a grid first, so a
`{ column = "Status" }` finds its cell through rowspans and colspans, and header
rows a portal repeats every twenty rows are skipped rather than read as cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction

from zoningsync.cases.build import CaseBatch, CaseRow, finish_cases, merge_located, pattern_values
from zoningsync.cases.charset import decode_page
from zoningsync.cases.model import CaseRecord
from zoningsync.cases.normalize import collapse
from zoningsync.cases.options import CaseOptions, FieldSpec
from zoningsync.redact import redact

PARSER = "html.parser"
MAX_SPAN = 1000
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul", "option", "caption",
})
_SKIPPED = (Comment, Declaration, Doctype, ProcessingInstruction)
_INVISIBLE = frozenset({"script", "style", "template", "noscript", "head"})
_URL_ATTRS = frozenset({"href", "src", "action", "data-href", "data-url"})
_LABELS = ("th", "dt", "label", "strong", "b", "td", "span", "div")


@dataclass(frozen=True)
class CasePage:
    """What one list page holds; URLs are absolute."""

    url: str
    rows: tuple[CaseRow, ...]
    batch: CaseBatch
    next_url: str | None
    document_urls: tuple[str, ...]
    rows_seen: int
    rows_missing_key: int
    rows_selector: str
    key_selector: str | None = None
    header_rows_skipped: int = 0

    @property
    def cases(self) -> tuple[CaseRecord, ...]:
        """The cases of the rows as they stand (without their detail pages)."""
        return self.batch.cases


@dataclass
class _Grid:
    """A table expanded cell by cell: every `tr` → the cell covering each column."""

    headers: list[list[str]] = field(default_factory=list)
    header_texts: list[str] = field(default_factory=list)
    header_row_ids: set[int] = field(default_factory=set)
    cells: dict[int, list[Tag | None]] = field(default_factory=dict)

    def column(self, label: str) -> int | None:
        wanted = _label_key(label)
        for exact in (True, False):
            for index, names in enumerate(self.headers):
                for name in names:
                    if name == wanted or (not exact and name.startswith(wanted)):
                        return index
        return None


def element_text(element: Tag | None) -> str | None:
    """The visible text, blanks collapsed; block elements and `<br>` separate words."""
    if element is None:
        return None
    parts: list[str] = []
    _collect_text(element, parts)
    return collapse("".join(parts))


def _collect_text(element: Tag, parts: list[str]) -> None:
    for child in element.children:
        if isinstance(child, Tag):
            if child.name in _INVISIBLE:
                continue
            block = child.name in _BLOCKS
            if block:
                parts.append(" ")
            _collect_text(child, parts)
            if block:
                parts.append(" ")
        elif isinstance(child, NavigableString) and not isinstance(child, _SKIPPED):
            parts.append(str(child))


def parse_html(body: bytes, content_type: str | None) -> BeautifulSoup:
    return BeautifulSoup(decode_page(body, content_type), PARSER)


def read_case_page(
    body: bytes, *, url: str, content_type: str | None, options: CaseOptions
) -> CasePage:
    """The cases, links to their details and documents, and the next page of one list page."""
    html = options.html
    if html is None or html.rows is None:
        raise ValueError("read_case_page needs [feeds.html] rows")
    soup = parse_html(body, content_type)
    base = _base_url(soup, url)
    grids: dict[int, _Grid] = {}
    needs_header = any(spec.column is not None for spec in options.fields.values())
    rows: list[CaseRow] = []
    skipped = 0
    missing = 0
    for element in soup.select(html.rows):
        grid = _grid_of(element, grids, needs_header)
        if grid is not None and _is_header(element, grid):
            skipped += 1
            continue
        text = element_text(element)
        if text is None:
            continue
        row = CaseRow(
            values=_values(element, soup, base, grid, options),
            text=text,
            detail_url=_link(element.select_one(html.detail), base) if html.detail else None,
            document_urls=_documents(element, base, options),
        )
        if row.values.get("case_number") is None and row.detail_url is None:
            missing += 1
        rows.append(row)
    key = options.fields.get("case_number")
    return CasePage(
        url=url,
        rows=tuple(rows),
        batch=finish_cases(rows, options),
        next_url=_next_url(soup, base, url, html.next),
        document_urls=_documents(soup, base, options),
        rows_seen=len(rows),
        rows_missing_key=missing,
        rows_selector=html.rows,
        key_selector=_describe(key) if key is not None else None,
        header_rows_skipped=skipped,
    )


def read_detail_page(
    body: bytes, *, url: str, content_type: str | None, options: CaseOptions, row: CaseRow
) -> CaseRow:
    """`row` with the values its detail page gives (they fill blanks and override).

    A `{ column = "Status" }` on a detail page is a label: the cell, `<dd>` or
    text that follows a `<th>`/`<dt>`/`<label>` reading "Status" (or "Status:").
    """
    soup = parse_html(body, content_type)
    base = _base_url(soup, url)
    page = soup.body or soup
    values = dict(row.values)
    for name, value in _values(page, soup, base, None, options).items():
        if value is not None:
            values[name] = value
    texts = [t for t in (row.text, element_text(page)) if t]
    documents = dict.fromkeys(row.document_urls + _documents(soup, base, options))
    return replace(row, values=values, text=" ".join(texts) or None,
                   document_urls=tuple(documents), detail_url=row.detail_url or url)


def layout_problem(page: CasePage, *, had_rows_before: bool) -> str | None:
    """Why this page looks like a changed layout (fail the run, retire nothing), or None."""
    problem = _layout_problem(page, had_rows_before=had_rows_before)
    return redact(problem) if problem is not None else None


def _layout_problem(page: CasePage, *, had_rows_before: bool) -> str | None:
    if page.rows_seen == 0:
        if had_rows_before:
            return (f"rows selector {page.rows_selector!r} matched no case rows on {page.url}, "
                    "which gave rows before: the page layout has probably changed; check "
                    "[feeds.html] rows")
        return None
    if page.rows_missing_key * 2 > page.rows_seen:
        where = page.key_selector or "no [feeds.fields] case_number"
        return (f"case_number ({where}) is missing on {page.rows_missing_key} of "
                f"{page.rows_seen} rows of {page.url}: the page layout has probably changed; "
                "check [feeds.fields] case_number")
    return None


def _values(row: Tag, soup: BeautifulSoup, base: str, grid: _Grid | None,
            options: CaseOptions) -> dict[str, Any]:
    found: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    row_text = element_text(row)
    detail_page = grid is None and row.name in ("body", "[document]")
    for spec in options.fields.values():
        if spec.column is not None:
            element = (_labelled(row, spec.column) if detail_page
                       else _cell(row, grid, spec.column))
            text = _read(element, spec.attr, base, cell=True)
        elif spec.selector is not None:
            text = _read(row.select_one(spec.selector), spec.attr, base)
        elif spec.page is not None:
            text = _read(soup.select_one(spec.page), spec.attr, base)
        else:
            text = row_text
        located = pattern_values(spec, text)
        value: Any = located.pop(spec.name)
        if spec.split is not None and value is not None:
            value = [part for part in (collapse(p) for p in spec.split.split(value)) if part]
        found[spec.name] = value
        merge_located(extras, located)
    merge_located(found, extras)
    return found


def _read(element: Tag | None, attr: str | None, base: str, *, cell: bool = False) -> str | None:
    if element is None:
        return None
    if attr is None:
        return element_text(element)
    if cell and not element.has_attr(attr):
        inner = element.find(lambda tag: tag.has_attr(attr))
        if not isinstance(inner, Tag):
            return None
        element = inner
    value = element.get(attr)
    if value is None:
        return None
    text = " ".join(value) if isinstance(value, list) else str(value)
    if attr in _URL_ATTRS:
        return _absolute(text, base)
    return collapse(text)


def _cell(row: Tag, grid: _Grid | None, label: str) -> Tag | None:
    if grid is None:
        return None
    index = grid.column(label)
    cells = grid.cells.get(id(row))
    if index is None or cells is None or index >= len(cells):
        return None
    return cells[index]


def _labelled(page: Tag, label: str) -> Tag | None:
    wanted = _label_key(label)
    for candidate in page.find_all(_LABELS):
        if _label_key(element_text(candidate) or "") != wanted:
            continue
        if candidate.name == "dt":
            value = candidate.find_next_sibling("dd")
        elif candidate.name in ("th", "td"):
            value = candidate.find_next_sibling(["td", "th"])
        elif candidate.name == "label" and candidate.get("for"):
            value = page.find(id=candidate["for"])
        else:
            value = candidate.find_next_sibling()
        if isinstance(value, Tag):
            return value
    return None


def _label_key(text: str) -> str:
    return (collapse(text) or "").rstrip(":").strip().casefold()


def _grid_of(element: Tag, grids: dict[int, _Grid], needs_header: bool) -> _Grid | None:
    if element.name != "tr":
        return None
    table = element.find_parent("table")
    if table is None:
        return None
    grid = grids.get(id(table))
    if grid is None:
        grid = grids[id(table)] = _build_grid(table, needs_header)
    return grid


def _build_grid(table: Tag, needs_header: bool) -> _Grid:
    grid = _Grid()
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    occupied: dict[tuple[int, int], Tag] = {}
    for r, tr in enumerate(rows):
        column = 0
        for cell in tr.find_all(["td", "th"], recursive=False):
            while (r, column) in occupied:
                column += 1
            colspan = _span(cell.get("colspan"))
            rowspan = min(_span(cell.get("rowspan")), len(rows) - r)
            for dr in range(rowspan):
                for dc in range(colspan):
                    occupied[(r + dr, column + dc)] = cell
            column += colspan
    width = 1 + max((c for _, c in occupied), default=-1)
    for r, tr in enumerate(rows):
        grid.cells[id(tr)] = [occupied.get((r, c)) for c in range(width)]
    header_rows = _header_rows(rows, needs_header)
    grid.header_row_ids = {id(tr) for tr in header_rows}
    grid.headers = [[] for _ in range(width)]
    for tr in header_rows:
        for index, covering in enumerate(grid.cells[id(tr)]):
            name = _label_key(element_text(covering) or "") if covering is not None else ""
            if name and name not in grid.headers[index]:
                grid.headers[index].append(name)
    for index, names in enumerate(grid.headers):
        if len(names) > 1:
            names.append(" ".join(names))
        grid.headers[index] = names
    grid.header_texts = [_row_key(grid, tr) for tr in header_rows]
    return grid


def _header_rows(rows: list[Tag], needs_header: bool) -> list[Tag]:
    """`<thead>` rows and the leading all-`<th>` rows; else the first row if columns are used."""
    headers = [tr for tr in rows if tr.find_parent("thead") is not None]
    for tr in rows:
        cells = tr.find_all(["td", "th"], recursive=False)
        if cells and all(c.name == "th" for c in cells) and tr.find_parent("tfoot") is None:
            headers.append(tr)
        elif tr.find_parent("thead") is None:
            break
    if not headers and needs_header and rows:
        headers.append(rows[0])
    return list(dict.fromkeys(headers))


def _row_key(grid: _Grid, tr: Tag) -> str:
    cells = grid.cells.get(id(tr), [])
    return "\x1f".join(_label_key(element_text(c) or "") if c is not None else "" for c in cells)


def _is_header(tr: Tag, grid: _Grid) -> bool:
    return id(tr) in grid.header_row_ids or _row_key(grid, tr) in grid.header_texts


def _span(value: Any) -> int:
    try:
        span = int(str(value).strip())
    except (TypeError, ValueError):
        return 1
    return span if 1 <= span <= MAX_SPAN else 1


def _base_url(soup: BeautifulSoup, url: str) -> str:
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        return urljoin(url, str(base["href"]))
    return url


def _absolute(href: str, base: str) -> str | None:
    href = href.strip()
    if not href or href.startswith("#") or urlsplit(href).scheme in ("javascript", "mailto",
                                                                     "tel", "data"):
        return None
    return urljoin(base, href)


def _link(element: Tag | None, base: str) -> str | None:
    if element is None:
        return None
    anchor = element if element.has_attr("href") else element.find(lambda t: t.has_attr("href"))
    if not isinstance(anchor, Tag):
        return None
    return _absolute(str(anchor["href"]), base)


def _documents(scope: Tag, base: str, options: CaseOptions) -> tuple[str, ...]:
    selector = options.documents_selector
    if selector is None:
        return ()
    links = (_link(element, base) for element in scope.select(selector))
    return tuple(dict.fromkeys(link for link in links if link is not None))


def _next_url(soup: BeautifulSoup, base: str, url: str, selector: str | None) -> str | None:
    if selector is None:
        return None
    found = _link(soup.select_one(selector), base)
    return None if found is None or found == url else found


def _describe(spec: FieldSpec) -> str:
    for form in ("selector", "column", "page"):
        value = getattr(spec, form)
        if value is not None:
            return f"{form} {value!r}"
    return "pattern " + repr(spec.pattern.pattern if spec.pattern else "")

