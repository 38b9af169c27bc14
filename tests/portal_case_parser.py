"""A custom case parser, as a county's own module would be: the portal's case list by hand.

Named by `parser = "tests.portal_case_parser:parse_case_list"` in a source file;
zoningsync imports it and hands it each fetched page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bs4 import BeautifulSoup

from zoningsync.cases.parser import FetchedDocument


def parse_case_list(document: FetchedDocument) -> Iterator[dict[str, Any]]:
    """One dict per row of `table#cases` that links a case; cells by the header's names."""
    soup = BeautifulSoup(document.text, "html.parser")
    table = soup.select_one("table#cases")
    if table is None:
        return
    header = [th.get_text(" ", strip=True) for th in table.select("thead th")]
    for row in table.select("tbody tr"):
        link = row.select_one("a.case-link")
        if link is None:
            continue  # the header row the county repeats inside the body
        cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
        named = dict(zip(header, cells, strict=False))
        yield {"case_number": link.get_text(strip=True), "title": named.get("Title"),
               "status": named.get("Status"), "applicant": named.get("Applicant"),
               "application": named.get("Location", "").rpartition("App No ")[2] or None}
