"""The case keys of one `[[feeds]]` table, read and checked once at load time.

Everything a reader needs later is compiled here (regexes, CSS selectors, the
custom parser's import), so a typo in a selector fails `zoningsync` at start
with the file, the key and the fix, never as zero cases at 3 a.m. The options
are plain frozen data (picklable: the PDF reader ships them to a child process).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

from zoningsync.cases.model import CASE_FIELDS, StatusClass
from zoningsync.cases.normalize import status_key
from zoningsync.errors import SourceConfigError
from zoningsync.redact import redact
from zoningsync.toml_table import TableReader

CaseSourceType = Literal["html", "pdf", "legistar"]
CASE_SOURCE_TYPES: tuple[CaseSourceType, ...] = ("html", "pdf", "legistar")
DATE_FIELDS = ("filed_at", "hearing_at", "decided_at")
FIELD_FORM_KEYS = ("column", "selector", "page", "attr", "pattern", "format", "split")
_CLIENT = re.compile(r"^[A-Za-z0-9_-]+$")
_PARSER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_SAMPLE_DATE = datetime(2001, 12, 31, 13, 45, 59)


@dataclass(frozen=True)
class FieldSpec:
    """Where one field is: exactly one of selector / column / page, or a pattern alone.

    `pattern` runs over the located text (or the row's whole text when nothing
    is located); its group named like the field is the value, its other named
    groups are fields too.
    """

    name: str
    selector: str | None = None
    column: str | None = None
    page: str | None = None
    attr: str | None = None
    pattern: re.Pattern[str] | None = None
    format: str | None = None
    split: re.Pattern[str] | None = None


@dataclass(frozen=True)
class HtmlOptions:
    rows: str | None = None
    next: str | None = None
    max_pages: int = 50
    detail: str | None = None
    documents: str | None = None
    date_format: str | None = None


@dataclass(frozen=True)
class PdfOptions:
    documents: str | None = None
    pattern: re.Pattern[str] | None = None
    strip: re.Pattern[str] | None = None
    table: bool = False
    text_settings: Mapping[str, Any] = field(default_factory=dict)
    table_settings: Mapping[str, Any] = field(default_factory=dict)
    date_format: str | None = None


@dataclass(frozen=True)
class LegistarOptions:
    client: str
    matter_types: tuple[str, ...] = ()
    since_days: int = 365
    page_size: int = 1000


@dataclass(frozen=True)
class CaseOptions:
    """How one case feed's documents become cases (the `[[feeds]]` case keys)."""

    feed_id: str
    source_file: Path
    type: CaseSourceType
    parcel_id_pattern: re.Pattern[str] | None = None
    status_map: Mapping[str, StatusClass] = field(default_factory=dict)
    html: HtmlOptions | None = None
    pdf: PdfOptions | None = None
    legistar: LegistarOptions | None = None
    filters: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    parser: str | None = None
    respect_robots: bool = True
    max_document_mb: float = 50.0
    parse_timeout_s: float = 60.0

    @property
    def max_document_bytes(self) -> int:
        return int(self.max_document_mb * 1024 * 1024)

    @property
    def date_format(self) -> str | None:
        """The feed-wide date format: `[feeds.html]`'s, else `[feeds.pdf]`'s."""
        if self.html is not None and self.html.date_format is not None:
            return self.html.date_format
        return self.pdf.date_format if self.pdf is not None else None

    @property
    def documents_selector(self) -> str | None:
        """CSS for links to PDFs: `[feeds.html] documents`, else `[feeds.pdf] documents`."""
        if self.html is not None and self.html.documents is not None:
            return self.html.documents
        return self.pdf.documents if self.pdf is not None else None


CASE_KEYS = frozenset({
    "type", "parcel_id_pattern", "status_map", "html", "pdf", "legistar", "filter", "fields",
    "parser", "respect_robots", "max_document_mb", "parse_timeout_s",
})


# Selectors and patterns of a real agenda run to a few hundred characters.
MAX_OPTION_CHARS = 4096


class _Table(TableReader):
    """The case options' reader: the first problem raises, naming file, key and fix.

    Case options are checked after the feed table's own keys (config.py reads
    those and collects every problem), in an order where a later check needs an
    earlier value (a PDF's pattern decides whether `table` is required), so they
    stop at the first problem instead.
    """

    def problem(self, key: str, text: str) -> NoReturn:
        raise self.fail(key, text)

    def fail(self, key: str, problem: str) -> SourceConfigError:
        return SourceConfigError(redact(f"{self.path}: {self.prefix}{key}: {problem}"))

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.table.get(key)

    def string(self, key: str, *, required: bool = False) -> str | None:
        if key not in self.table:
            if required:
                raise self.fail(key, "is required; add it as a string")
            self.used.add(key)
            return None
        value = self.get_str(key, max_chars=MAX_OPTION_CHARS)
        if not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self.get(key, bool, "true or false", default))

    def number(self, key: str, default: float, low: float, high: float, *,
               integer: bool = False) -> float:
        if integer:
            return self.get_int(key, int(low), int(high), int(default))
        return self.get_float(key, low, high, default)

    def sub_table(self, key: str) -> _Table | None:
        if self.raw(key) is None:
            return None
        value = self.get(key, Mapping, f"a table ([{self.prefix}{key}])", None)
        return _Table(self.path, value, f"{self.prefix}{key}.")

    def regex(self, key: str, *, flags: int = 0) -> re.Pattern[str] | None:
        text = self.string(key)
        return None if text is None else compile_regex(text, lambda p: self.fail(key, p), flags)

    def selector(self, key: str, *, required: bool = False) -> str | None:
        text = self.string(key, required=required)
        if text is not None:
            check_selector(text, lambda p: self.fail(key, p))
        return text

    def date_format(self, key: str) -> str | None:
        text = self.string(key)
        if text is not None:
            check_date_format(text, lambda p: self.fail(key, p))
        return text


def compile_regex(text: str, fail: Any, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise fail(f"not a valid regular expression ({exc}); fix the pattern") from None


def check_selector(text: str, fail: Any) -> None:
    import soupsieve  # 0.1 s to import: only a case feed's selectors need it

    try:
        soupsieve.compile(text)
    except (soupsieve.SelectorSyntaxError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise fail(f"not a valid CSS selector ({first}); fix the selector") from None


def check_date_format(text: str, fail: Any) -> None:
    if "%" not in text:
        raise fail(f"{text!r} has no strptime directive; write it like '%m/%d/%Y'")
    try:
        datetime.strptime(_SAMPLE_DATE.strftime(text), text)
    except ValueError as exc:
        raise fail(f"not a usable strptime format ({exc}); write it like '%m/%d/%Y'") from None


def parse_case_options(
    path: Path, feed_id: str, table: Mapping[str, Any]
) -> tuple[CaseOptions, frozenset[str]]:
    """The case options of one `[[feeds]]` table, and the keys of it they consumed.

    The caller (config.py) rejects every key of the feed table that is neither
    its own nor in the returned set.
    """
    feed = _Table(path, table, f"feeds.{feed_id}.")
    parser = feed.string("parser")
    if parser is not None and not _PARSER.match(parser):
        raise feed.fail("parser", f"{parser!r} must name a function as 'package.module:function'")
    source_type = _source_type(feed, parser)
    parcel_pattern = feed.regex("parcel_id_pattern", flags=re.IGNORECASE)
    status_map = _status_map(feed)
    html = _html(feed, required=source_type == "html" and parser is None)
    pdf = _pdf(feed, source_type, parser)
    legistar = _legistar(feed, source_type)
    filters = _filters(feed)
    fields = _fields(feed, source_type, pdf)
    limits = feed.sub_table("pdf")
    max_mb = _limit(feed, limits, "max_document_mb", 50.0, 0.001, 1024.0)
    timeout_s = _limit(feed, limits, "parse_timeout_s", 60.0, 0.1, 3600.0)
    options = CaseOptions(
        feed_id=feed_id, source_file=path, type=source_type, parcel_id_pattern=parcel_pattern,
        status_map=status_map, html=html, pdf=pdf, legistar=legistar, filters=filters,
        fields=fields, parser=parser, respect_robots=feed.boolean("respect_robots", True),
        max_document_mb=max_mb, parse_timeout_s=timeout_s,
    )
    if parser is not None:
        from zoningsync.cases.parser import load_parser

        load_parser(parser, fail=lambda p: feed.fail("parser", p))
    return options, CASE_KEYS


def _source_type(feed: _Table, parser: str | None) -> CaseSourceType:
    value = feed.string("type", required=parser is None)
    if value is None:
        return "html"
    for known in CASE_SOURCE_TYPES:
        if value == known:
            return known
    raise feed.fail("type", f"{value!r} is not a case source type; use one of: "
                    + ", ".join(CASE_SOURCE_TYPES))


def _status_map(feed: _Table) -> dict[str, StatusClass]:
    value = feed.raw("status_map")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise feed.fail("status_map", "must be a table like { \"Approved by Council\" = "
                        "\"approved\" }")
    classes = ", ".join(c.value for c in StatusClass)
    mapped: dict[str, StatusClass] = {}
    for word, klass in value.items():
        if not isinstance(klass, str) or klass not in {c.value for c in StatusClass}:
            raise feed.fail(f"status_map.{word}", f"must be one of {classes}, got {klass!r}")
        mapped[status_key(word)] = StatusClass(klass)
    return mapped


def _html(feed: _Table, *, required: bool) -> HtmlOptions | None:
    html = feed.sub_table("html")
    if html is None:
        if required:
            raise feed.fail("html.rows", "is required for type = \"html\"; add [feeds.html] "
                            "with rows = \"<CSS selector of one element per case>\"")
        return None
    options = HtmlOptions(
        rows=html.selector("rows", required=required),
        next=html.selector("next"),
        max_pages=int(html.number("max_pages", 50, 1, 100_000, integer=True)),
        detail=html.selector("detail"),
        documents=html.selector("documents"),
        date_format=html.date_format("date_format"),
    )
    html.reject_unknown()
    return options


def _pdf(feed: _Table, source_type: CaseSourceType, parser: str | None) -> PdfOptions | None:
    pdf = feed.sub_table("pdf")
    if pdf is None:
        if source_type == "pdf" and parser is None:
            raise feed.fail("pdf.pattern", "is required for type = \"pdf\"; add [feeds.pdf] "
                            "with pattern = '(?P<case_number>…)…' or table = true")
        return None
    pdf.used.update({"max_document_mb", "parse_timeout_s"})
    table = pdf.boolean("table", False)
    pattern = pdf.regex("pattern")
    if pattern is None and not table and parser is None:
        raise pdf.fail("pattern", "is required unless table = true; add a regex with a "
                       "named group (?P<case_number>…)")
    if pattern is not None and "case_number" not in pattern.groupindex and not table:
        raise pdf.fail("pattern", "has no named group 'case_number'; name the group that "
                       "holds the case number (?P<case_number>…)")
    options = PdfOptions(
        documents=pdf.selector("documents"),
        pattern=pattern,
        strip=pdf.regex("strip"),
        table=table,
        text_settings=_settings(pdf, "text_settings"),
        table_settings=_settings(pdf, "table_settings"),
        date_format=pdf.date_format("date_format"),
    )
    pdf.reject_unknown()
    return options


def _settings(pdf: _Table, key: str) -> dict[str, Any]:
    value = pdf.raw(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise pdf.fail(key, "must be a table of pdfplumber settings, like "
                       "{ x_tolerance = 2 }")
    for name, setting in value.items():
        if isinstance(setting, float) and not math.isfinite(setting):
            raise pdf.fail(f"{key}.{name}", "must be a finite number")
        if isinstance(setting, Mapping):
            raise pdf.fail(f"{key}.{name}", "must be a number, string, bool or list")
    return dict(value)


def _legistar(feed: _Table, source_type: CaseSourceType) -> LegistarOptions | None:
    legistar = feed.sub_table("legistar")
    if legistar is None:
        if source_type == "legistar":
            raise feed.fail("legistar.client", "is required for type = \"legistar\"; add "
                            "[feeds.legistar] with client = \"<city>\" (as in "
                            "webapi.legistar.com/v1/<city>)")
        return None
    client = legistar.string("client", required=True) or ""
    if not _CLIENT.match(client):
        raise legistar.fail("client", f"{client!r} must be a Legistar client name like "
                            "\"pittsburgh\" (letters, digits, - and _)")
    types = legistar.raw("matter_types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) and t.strip() for t in types):
        raise legistar.fail("matter_types", "must be a list of matter type names, like "
                            "[\"Ordinance\", \"Resolution\"]")
    options = LegistarOptions(
        client=client,
        matter_types=tuple(t.strip() for t in types),
        since_days=int(legistar.number("since_days", 365, 1, 36_500, integer=True)),
        page_size=int(legistar.number("page_size", 1000, 1, 1000, integer=True)),
    )
    legistar.reject_unknown()
    return options


def _filters(feed: _Table) -> dict[str, re.Pattern[str]]:
    table = feed.sub_table("filter")
    if table is None:
        return {}
    filters = {}
    for name in list(table.table):
        pattern = table.regex(name)
        if pattern is not None:
            filters[name] = pattern
    return filters


def _fields(feed: _Table, source_type: CaseSourceType,
            pdf: PdfOptions | None) -> dict[str, FieldSpec]:
    table = feed.sub_table("fields")
    if table is None:
        return {}
    pdf_tables = source_type == "pdf" and pdf is not None and pdf.table
    specs = {}
    for name, form in table.table.items():
        table.used.add(name)
        spec = _field(table, name, form)
        if pdf_tables and (spec.selector is not None or spec.page is not None):
            raise table.fail(name, "a PDF table has no CSS: locate the field with "
                             "{ column = \"<header text>\" } or a pattern")
        specs[name] = spec
    return specs


def _field(fields: _Table, name: str, form: Any) -> FieldSpec:
    if isinstance(form, str):
        check_selector(form, lambda p: fields.fail(name, p))
        return FieldSpec(name=name, selector=form)
    if not isinstance(form, Mapping):
        raise fields.fail(name, "must be a CSS selector string or a table like "
                          "{ column = \"Status\" }, { selector = \"td a\", attr = \"href\" }, "
                          "{ page = \"#id\" } or { pattern = '…' }")
    spec = _Table(fields.path, form, f"{fields.prefix}{name}.")
    located = [key for key in ("column", "selector", "page") if key in form]
    if len(located) > 1:
        raise fields.fail(name, f"has both {located[0]} and {located[1]}; keep one of "
                          "column, selector and page")
    column = spec.string("column")
    selector = spec.selector("selector")
    page = spec.selector("page")
    attr = spec.string("attr")
    pattern = spec.regex("pattern")
    fmt = spec.date_format("format")
    split = spec.regex("split")
    spec.reject_unknown()
    if not located and pattern is None and fmt is None and split is None:
        raise fields.fail(name, "says nowhere the field is; give column, selector, page or "
                          "pattern")
    if attr is not None and column is None and selector is None and page is None:
        raise fields.fail(f"{name}.attr", "needs a selector (or page) whose element has it")
    if fmt is not None and name in CASE_FIELDS and name not in DATE_FIELDS:
        raise fields.fail(f"{name}.format", f"only date fields ({', '.join(DATE_FIELDS)}) "
                          "take a format; remove it")
    return FieldSpec(name=name, selector=selector, column=column, page=page, attr=attr,
                     pattern=pattern, format=fmt, split=split)


def _limit(feed: _Table, pdf: _Table | None, key: str, default: float, low: float,
           high: float) -> float:
    in_pdf = pdf is not None and key in pdf.table
    if in_pdf and key in feed.table:
        raise feed.fail(key, "is set both here and in [feeds.pdf]; keep one")
    if in_pdf and pdf is not None:
        return pdf.number(key, default, low, high)
    return feed.number(key, default, low, high)
