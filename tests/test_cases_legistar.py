"""Legistar matters → cases; the query that pages through them and reads only changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zoningsync.cases.legistar import (
    attachment_urls,
    attachments_url,
    matter_query,
    matters_url,
    read_matters,
    read_since,
)
from zoningsync.cases.model import StatusClass
from zoningsync.cases.options import CaseOptions, LegistarOptions, parse_case_options

FIXTURES = Path(__file__).parent / "fixtures" / "cases"
MATTERS = json.loads((FIXTURES / "legistar_matters.json").read_text())
ATTACHMENTS = json.loads((FIXTURES / "legistar_attachments.json").read_text())


def options(**extra: object) -> CaseOptions:
    table = {"type": "legistar",
             "legistar": {"client": "pittsburgh", "matter_types": ["Ordinance", "Resolution"]}}
    table.update(extra)
    return parse_case_options(Path("sources/pgh.toml"), "council", table)[0]


def legistar() -> LegistarOptions:
    found = options().legistar
    assert found is not None
    return found


def test_a_matter_maps_to_the_canonical_fields() -> None:
    case = read_matters(MATTERS, options()).cases[0]
    assert case.case_number == "2024-0215"
    assert case.title == "Rezoning 5800 Forbes Ave"
    assert case.case_type == "Ordinance"
    assert case.status == "Referred for Public Hearing"
    assert case.status_class is StatusClass.PENDING
    assert case.filed_at == datetime(2024, 3, 5, tzinfo=UTC)
    assert case.hearing_at == datetime(2024, 4, 16, tzinfo=UTC)
    assert case.decided_at is None


def test_every_other_matter_key_goes_to_attrs() -> None:
    attrs = read_matters(MATTERS, options()).cases[0].attrs
    assert attrs["MatterId"] == 7301
    assert attrs["MatterGuid"] == "2B1D3A0E-6F7C-4C1E-9A55-1E0F4C2D8B11"
    assert attrs["MatterTitle"].startswith("Ordinance amending the Pittsburgh Code")
    assert attrs["MatterRestrictViewViaWeb"] is False
    assert "MatterFile" not in attrs and "MatterPassedDate" not in attrs


def test_an_empty_name_falls_back_to_the_title() -> None:
    case = read_matters(MATTERS, options()).cases[1]
    assert case.title == ("Resolution approving a Planned Development District for "
                          "100 Smallman Street")
    assert case.decided_at == datetime(2024, 2, 20, tzinfo=UTC)
    assert case.status_class is StatusClass.APPROVED


def test_a_matter_links_to_its_public_detail_page() -> None:
    case = read_matters(MATTERS, options()).cases[0]
    assert case.detail_url == ("https://pittsburgh.legistar.com/LegislationDetail.aspx?ID=7301"
                               "&GUID=2B1D3A0E-6F7C-4C1E-9A55-1E0F4C2D8B11")


def test_a_matter_without_a_file_number_is_rejected_as_missing_key() -> None:
    batch = read_matters(MATTERS, options())
    assert [r.reason for r in batch.rejected] == ["missing_key"]
    assert batch.rejected[0].raw["MatterId"] == 7190


def test_the_filter_applies_to_matters() -> None:
    batch = read_matters(MATTERS, options(filter={"title": r"(?i)rezon"}))
    assert [case.case_number for case in batch.cases] == ["2024-0215"]


def test_the_first_page_asks_for_page_size_matters_of_the_types() -> None:
    assert matter_query(0, legistar()) == {
        "$top": "1000", "$skip": "0", "$orderby": "MatterId",
        "$filter": "(MatterTypeName eq 'Ordinance' or MatterTypeName eq 'Resolution')",
    }


def test_page_n_skips_n_pages_and_since_filters_on_last_modified() -> None:
    since = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    params = matter_query(3, legistar(), since=since)
    assert params["$skip"] == "3000"
    assert params["$filter"] == (
        "(MatterTypeName eq 'Ordinance' or MatterTypeName eq 'Resolution') and "
        "MatterLastModifiedUtc ge datetime'2024-03-01T12:30:00'")


def test_without_types_only_since_filters() -> None:
    plain = LegistarOptions(client="pittsburgh", matter_types=("Zoning Case's",), page_size=50)
    params = matter_query(1, plain, since=datetime(2024, 1, 1, tzinfo=UTC))
    assert params["$top"] == "50" and params["$skip"] == "50"
    assert params["$filter"] == ("MatterTypeName eq 'Zoning Case''s' and "
                                 "MatterLastModifiedUtc ge datetime'2024-01-01T00:00:00'")


def test_since_rereads_an_overlap_window_within_since_days() -> None:
    now = datetime(2024, 3, 10, tzinfo=UTC)
    assert read_since(now, legistar(), None) == now - timedelta(days=365)
    last = datetime(2024, 3, 9, tzinfo=UTC)
    assert read_since(now, legistar(), last) == last - timedelta(days=7)


def test_urls_append_the_client_to_the_api_root() -> None:
    assert matters_url("https://webapi.legistar.com/v1/", "pittsburgh") == (
        "https://webapi.legistar.com/v1/pittsburgh/matters")
    assert attachments_url("https://webapi.legistar.com/v1", "pittsburgh", 7301) == (
        "https://webapi.legistar.com/v1/pittsburgh/matters/7301/attachments")


def test_attachments_give_their_pdf_hyperlinks_once() -> None:
    assert attachment_urls(ATTACHMENTS) == (
        "https://pittsburgh.legistar.com/View.ashx?M=F&ID=12860201&GUID="
        "A1B2C3D4-0000-1111-2222-333344445555",)
