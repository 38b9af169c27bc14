"""Cases out of agenda PDFs: a pattern over the text of all pages, or the tables.

A PDF is hostile input: it may be an HTML error page, encrypted, truncated, a
scan without text, or built to make pdfminer spin. Every such document ends as
one `DocumentQuarantine` reason with a detail, never an exception. Reading runs
in a child process (`read_pdf_bounded`) because a spinning parse cannot be
stopped in a thread: the child is killed at the time limit.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import io
import multiprocessing
import multiprocessing.connection
import re
import threading
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext
from typing import Any

import pdfplumber

from zoningsync.cases.build import (
    CaseRejection,
    CaseRow,
    finish_cases,
    merge_located,
    pattern_values,
)
from zoningsync.cases.model import CaseRecord, DocumentQuarantine
from zoningsync.cases.normalize import collapse
from zoningsync.cases.options import CaseOptions, PdfOptions
from zoningsync.redact import redact

PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024
# pdfminer's encryption errors, matched by name: pdfplumber wraps them in its own type.
_ENCRYPTION_NAMES = ("PDFEncryptionError", "PDFPasswordIncorrect", "PDFEncryptionWarning")


@dataclass(frozen=True)
class PdfReading:
    """What one document gave: cases (with their pages), or why it gave none."""

    url: str
    sha256: str
    cases: tuple[CaseRecord, ...] = ()
    rejected: tuple[CaseRejection, ...] = ()
    quarantine: DocumentQuarantine | None = None
    detail: str | None = None
    warnings: tuple[str, ...] = ()
    page_count: int = 0
    filtered_out: int = 0


@dataclass
class _TableRow:
    cells: list[str | None]
    pages: set[int] = field(default_factory=set)


def read_pdf(body: bytes, *, url: str, options: CaseOptions) -> PdfReading:
    """Read one PDF by `[feeds.pdf]` (sync and CPU-bound: call it off the event loop)."""
    sha256 = hashlib.sha256(body).hexdigest()
    pdf_options = options.pdf or PdfOptions()

    def quarantine(reason: DocumentQuarantine, detail: str, pages: int = 0) -> PdfReading:
        return PdfReading(url=url, sha256=sha256, quarantine=reason, detail=redact(detail),
                          page_count=pages)

    if PDF_MAGIC not in body[:MAGIC_WINDOW]:
        start = collapse(body[:60].decode("utf-8", "replace")) or "nothing"
        return quarantine(DocumentQuarantine.NOT_PDF,
                          f"no %PDF- header in the first {MAGIC_WINDOW} bytes; starts with "
                          f"{start!r}")
    if len(body) > options.max_document_bytes:
        return quarantine(DocumentQuarantine.TOO_LARGE,
                          f"{len(body)} bytes is over max_document_mb = "
                          f"{options.max_document_mb:g}")
    try:
        texts, tables = _extract(body, pdf_options)
    except Exception as exc:  # hostile input: pdfminer raises anything
        if _is_encryption(exc):
            return quarantine(DocumentQuarantine.ENCRYPTED,
                              f"the PDF is encrypted and cannot be read ({_describe(exc)})")
        return quarantine(DocumentQuarantine.MALFORMED,
                          f"pdfplumber could not read it ({_describe(exc)})")
    blank = [number for number, text in enumerate(texts, 1) if not text.strip()]
    if len(blank) == len(texts):
        return quarantine(DocumentQuarantine.NO_TEXT_LAYER,
                          f"none of its {len(texts)} pages has extractable text (a scan?)",
                          len(texts))
    warnings = [f"pages {_ranges(blank)} have no text layer"] if blank else []
    if pdf_options.table:
        rows = _table_rows(tables, options, warnings)
        nothing = "no table rows with cells were found"
    else:
        rows = _pattern_rows(texts, options)
        nothing = "the pattern matched nowhere in the text"
    if not rows:
        return quarantine(DocumentQuarantine.NO_MATCH, f"{nothing} ({len(texts)} pages)",
                          len(texts))
    rows = [CaseRow(values=row.values, text=row.text, pages=row.pages, document_url=url,
                    document_sha256=sha256) for row in rows]
    batch = finish_cases(rows, options)
    return PdfReading(url=url, sha256=sha256, cases=batch.cases, rejected=batch.rejected,
                      warnings=tuple(redact(w) for w in warnings), page_count=len(texts),
                      filtered_out=batch.filtered_out)


async def read_pdf_bounded(
    body: bytes, *, url: str, options: CaseOptions, timeout_s: float | None = None
) -> PdfReading:
    """`read_pdf` in a child process killed after `timeout_s` (default `parse_timeout_s`).

    The waiting happens in the default executor, so the event loop never blocks;
    a document that outlives the limit is quarantined `malformed`.
    """
    limit = options.parse_timeout_s if timeout_s is None else timeout_s
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, read_pdf_in_child, body, url, options, limit)


def read_pdf_in_child(body: bytes, url: str, options: CaseOptions,
                      timeout_s: float) -> PdfReading:
    """`read_pdf` in a forkserver child; blocks the calling thread up to `timeout_s`."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, body, url, options), daemon=True,
                              name="zoningsync-pdf")
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            return _failed(body, url, f"reading it exceeded the {timeout_s:g} s limit "
                           "(parse_timeout_s); the reader was stopped")
        try:
            reading: PdfReading = receiver.recv()
        except (EOFError, OSError):
            process.join(1)
            return _failed(body, url, "the PDF reader process died "
                           f"(exit code {process.exitcode})")
        return reading
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()


def _child(sender: multiprocessing.connection.Connection, body: bytes, url: str,
           options: CaseOptions) -> None:
    sender.send(read_pdf(body, url=url, options=options))
    sender.close()


_context_lock = threading.Lock()
_forkserver: ForkServerContext | None = None


def _context() -> ForkServerContext:
    """The forkserver, started once with pdfplumber imported: each child forks warm."""
    global _forkserver
    with _context_lock:
        if _forkserver is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["zoningsync.cases.pdf"])
            _forkserver = context
        return _forkserver


def _failed(body: bytes, url: str, detail: str) -> PdfReading:
    return PdfReading(url=url, sha256=hashlib.sha256(body).hexdigest(),
                      quarantine=DocumentQuarantine.MALFORMED, detail=redact(detail))


def _extract(body: bytes, options: PdfOptions
             ) -> tuple[list[str], list[tuple[int, list[list[str | None]]]]]:
    texts: list[str] = []
    tables: list[tuple[int, list[list[str | None]]]] = []
    with pdfplumber.open(io.BytesIO(body)) as document:
        for number, page in enumerate(document.pages, 1):
            texts.append(page.extract_text(**options.text_settings) or "")
            if options.table:
                for table in page.extract_tables(dict(options.table_settings) or None):
                    tables.append((number, table))
    return texts, tables


def _pattern_rows(texts: list[str], options: CaseOptions) -> list[CaseRow]:
    """One row per match over all pages joined by newlines; pages from the match's span."""
    pdf = options.pdf
    if pdf is None or pdf.pattern is None:
        return []
    text = "\n".join(texts)
    starts = []
    offset = 0
    for page_text in texts:
        starts.append(offset)
        offset += len(page_text) + 1
    rows = []
    for match in pdf.pattern.finditer(text):
        if match.end() == match.start():
            continue
        first = bisect.bisect_right(starts, match.start())
        last = bisect.bisect_right(starts, match.end() - 1)
        values = {name: _clean(value, pdf.strip) for name, value in match.groupdict().items()}
        rows.append(CaseRow(values=values, text=_clean(match.group(0), pdf.strip),
                            pages=tuple(range(first, last + 1))))
    return rows


def _clean(value: str | None, strip: re.Pattern[str] | None) -> str | None:
    if value is None:
        return None
    return collapse(strip.sub("", value) if strip is not None else value)


def _table_rows(tables: list[tuple[int, list[list[str | None]]]], options: CaseOptions,
                warnings: list[str]) -> list[CaseRow]:
    """Rows of the document's tables; a header repeated on each page is dropped.

    A table whose first row equals the current header continues it; one with
    another width starts a new header. A row with an empty key cell is the
    continuation of the row above it (a cell wrapped over a page break).
    """
    header: list[str] | None = None
    merged: list[tuple[list[str], _TableRow]] = []
    for page, table in tables:
        cleaned = [[collapse(cell) for cell in row] for row in table]
        cleaned = [row for row in cleaned if any(cell for cell in row)]
        if not cleaned:
            continue
        first = [_label(cell) for cell in cleaned[0]]
        if header is None or (len(first) != len(header) and first != header):
            header = first
            cleaned = cleaned[1:]
        key_column = _key_column(header, options)
        for cells in cleaned:
            if [_label(cell) for cell in cells] == header:
                continue
            previous = merged[-1] if merged and merged[-1][0] is header else None
            if previous is not None and key_column is not None and _blank(cells, key_column):
                _append(previous[1], cells, page)
            else:
                merged.append((header, _TableRow(cells=list(cells), pages={page})))
    _warn_missing_columns(merged, options, warnings)
    return [_table_case(columns, row, options) for columns, row in merged]


def _table_case(header: list[str], row: _TableRow, options: CaseOptions) -> CaseRow:
    found: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    row_text = collapse(" ".join(cell for cell in row.cells if cell))
    for spec in options.fields.values():
        if spec.column is not None:
            index = _find_column(header, spec.column)
            text = row.cells[index] if index is not None and index < len(row.cells) else None
        elif spec.selector is None and spec.page is None:
            text = row_text
        else:
            continue
        located = pattern_values(spec, text)
        value: Any = located.pop(spec.name)
        if spec.split is not None and value is not None:
            value = [part for part in (collapse(p) for p in spec.split.split(value)) if part]
        found[spec.name] = value
        merge_located(extras, located)
    merge_located(found, extras)
    return CaseRow(values=found, text=row_text, pages=tuple(sorted(row.pages)))


def _label(cell: str | None) -> str:
    return (cell or "").rstrip(":").strip().casefold()


def _find_column(header: list[str], wanted: str) -> int | None:
    key = _label(collapse(wanted))
    for exact in (True, False):
        for index, name in enumerate(header):
            if name == key or (not exact and name.startswith(key)):
                return index
    return None


def _key_column(header: list[str], options: CaseOptions) -> int | None:
    spec = options.fields.get("case_number")
    if spec is None or spec.column is None:
        return None
    return _find_column(header, spec.column)


def _blank(cells: list[str | None], index: int) -> bool:
    return index >= len(cells) or not cells[index]


def _append(row: _TableRow, cells: list[str | None], page: int) -> None:
    for index, cell in enumerate(cells):
        if not cell:
            continue
        if index < len(row.cells):
            row.cells[index] = f"{row.cells[index]} {cell}" if row.cells[index] else cell
        else:
            row.cells.append(cell)
    row.pages.add(page)


def _warn_missing_columns(merged: list[tuple[list[str], _TableRow]], options: CaseOptions,
                          warnings: list[str]) -> None:
    headers = {tuple(header) for header, _ in merged}
    for spec in options.fields.values():
        if spec.column is None:
            continue
        if all(_find_column(list(header), spec.column) is None for header in headers):
            seen = "; ".join(", ".join(h) for h in headers) or "none"
            warnings.append(f"column {spec.column!r} of [feeds.fields] {spec.name} is in no "
                            f"table header (headers: {seen})")


def _is_encryption(exc: BaseException) -> bool:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(cls.__name__ in _ENCRYPTION_NAMES for cls in type(current).__mro__):
            return True
        pending.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return False


def _describe(exc: BaseException) -> str:
    inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
    shown = inner if inner is not None else exc
    message = collapse(str(shown)) or "no message"
    return f"{type(shown).__name__}: {message[:300]}"


def _ranges(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:20]) + (" …" if len(numbers) > 20 else "")
