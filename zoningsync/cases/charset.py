"""Bytes of a fetched page to text, the way browsers do it, tolerating mislabels.

Portals declare one charset and send another (city-scrapers meets cp1252 pages
labelled utf-8 every year). The declared charset is tried strictly; when it
fails, cp1252 (what such pages nearly always are) decodes it instead.
"""

from __future__ import annotations

import codecs
import re

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
SNIFF_BYTES = 4096
FALLBACK = "cp1252"
# HTML treats these labels as windows-1252, a superset that decodes every page they label.
_AS_CP1252 = {"iso-8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "iso8859-1",
              "windows-1252", "cp1252"}


def declared_charset(body: bytes, content_type: str | None) -> str | None:
    """The charset of the HTTP header, else of a `<meta>` near the top, else None."""
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        if match:
            return match.group(1).lower()
    meta = _META_CHARSET.search(body[:SNIFF_BYTES])
    return meta.group(1).decode("ascii", "replace").lower() if meta else None


def decode_page(body: bytes, content_type: str | None) -> str:
    """The page's text: BOM, else declared charset, else utf-8; cp1252 when that fails."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(encoding, "replace").lstrip("\ufeff")
    charset = declared_charset(body, content_type) or "utf-8"
    if charset in _AS_CP1252:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode(FALLBACK, "replace")
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return body.decode(FALLBACK, "replace")
