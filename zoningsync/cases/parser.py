"""Custom parsers: `parser = "package.module:function"` for portals no config describes.

The function receives the fetched page as a `FetchedDocument` and yields case
dicts with the same field names as `[feeds.fields]`; what it yields goes
through the same filter and conversion as any other source, so a custom parser
cannot store a case the config path would refuse.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zoningsync.cases.build import CaseBatch, CaseRejection, CaseRow, finish_cases, json_ready
from zoningsync.cases.charset import decode_page
from zoningsync.cases.options import CaseOptions
from zoningsync.errors import SourceConfigError, ZoningsyncError
from zoningsync.redact import redact

INVALID_ITEM = "invalid"
MAX_ITEMS = 100_000


@dataclass(frozen=True)
class FetchedDocument:
    """A fetched page as a custom parser sees it: `text` is `body` decoded like a browser would."""

    url: str
    body: bytes
    content_type: str | None
    text: str

    @classmethod
    def from_bytes(cls, url: str, body: bytes, content_type: str | None) -> FetchedDocument:
        return cls(url=url, body=body, content_type=content_type,
                   text=decode_page(body, content_type))


CaseParser = Callable[[FetchedDocument], Iterable[Mapping[str, Any]]]


class ParserFailed(ZoningsyncError):
    """The feed's custom parser failed on a document."""


def load_parser(spec: str, *, fail: Callable[[str], SourceConfigError] | None = None
                ) -> CaseParser:
    """Import `package.module:function`; any import problem is a SourceConfigError."""
    def problem(text: str) -> SourceConfigError:
        return fail(text) if fail is not None else SourceConfigError(f"parser {spec!r}: {text}")

    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing user code is a config error
        raise problem(f"cannot import {module_name!r} ({type(exc).__name__}: "
                      f"{redact(str(exc))}); check the module path and that it is "
                      "installed") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise problem(f"{module_name!r} has no function {function_name!r}; name a function "
                      "defined in that module")
    parser: CaseParser = function
    return parser


def run_parser(parser: CaseParser, document: FetchedDocument, options: CaseOptions
               ) -> CaseBatch:
    """The cases a custom parser yields for one document, validated like any other source."""
    rows: list[CaseRow] = []
    rejected: list[CaseRejection] = []
    try:
        for index, item in enumerate(parser(document)):
            if index >= MAX_ITEMS:
                raise ParserFailed(f"custom parser {options.parser} yielded more than "
                                   f"{MAX_ITEMS} cases for {redact(document.url)}")
            if not isinstance(item, Mapping) or not all(isinstance(k, str) for k in item):
                rejected.append(CaseRejection(
                    INVALID_ITEM, f"custom parser yielded {type(item).__name__}, not a dict "
                    "of field names", {"value": json_ready(repr(item)[:1000])}))
                continue
            rows.append(CaseRow(values=dict(item), text=_text_of(item),
                                document_url=None))
    except ParserFailed:
        raise
    except Exception as exc:  # user code: any failure is this document's failure
        raise ParserFailed(f"custom parser {options.parser} failed on "
                           f"{redact(document.url)}: {type(exc).__name__}: "
                           f"{redact(str(exc))}") from None
    batch = finish_cases(rows, options)
    return CaseBatch(batch.cases, tuple(rejected) + batch.rejected, batch.filtered_out)


def _text_of(item: Mapping[str, Any]) -> str:
    return " ".join(str(v) for v in item.values() if isinstance(v, str))
