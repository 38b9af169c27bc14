"""Field values keep their exact upstream meaning, whatever the declared type says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoningsync.producers.arcgis.fields import (
    DATE,
    EXACT_FLOAT_MS,
    FieldMap,
    datetime_from_epoch_ms,
    iso_dates,
    normalize_value,
)


@pytest.mark.parametrize(
    ("value", "field_type", "expected"),
    [
        (1614834367000, "esriFieldTypeDate", "2021-03-04T05:06:07Z"),
        (1614834367123, "esriFieldTypeDate", "2021-03-04T05:06:07.123Z"),
        (-86400000, "esriFieldTypeDate", "1969-12-31T00:00:00Z"),
        ("2021-03-04", "esriFieldTypeDateOnly", "2021-03-04"),
        ("2021-03-04T00:06:07-05:00", "esriFieldTypeTimestampOffset", "2021-03-04T05:06:07Z"),
        (2**53 + 1, "esriFieldTypeBigInteger", 2**53 + 1),
        (1614834367000, "esriFieldTypeInteger", 1614834367000),
        (0.1 + 0.2, "esriFieldTypeDouble", 0.1 + 0.2),
        ("NIECE JERMEY J & SARAH R    ", "esriFieldTypeString", "NIECE JERMEY J & SARAH R"),
        ("  4660", "esriFieldTypeString", "  4660"),
        (None, "esriFieldTypeDate", None),
        (None, "esriFieldTypeString", None),
    ],
)
def test_values_are_normalized_by_declared_type(value: Any, field_type: str,
                                                expected: Any) -> None:
    result = normalize_value(value, field_type)
    assert result == expected
    assert type(result) is type(expected)


def field_map(key: tuple[str, ...] = ("PIN",)) -> FieldMap:
    return FieldMap(
        field_types={"OBJECTID": "esriFieldTypeOID", "PIN": "esriFieldTypeString",
                     "ZONING": "esriFieldTypeString", "EDITED": "esriFieldTypeDate",
                     "BOOK": "esriFieldTypeInteger", "PAGE": "esriFieldTypeInteger",
                     "SHAPE": "esriFieldTypeGeometry"},
        oid_field="OBJECTID", canonical={"parcel_id": "PIN", "zoning_code": "ZONING"},
        key=key, edit_date_field="EDITED")


@given(st.integers(-EXACT_FLOAT_MS - 10**6, EXACT_FLOAT_MS + 10**6)
       | st.integers(-62_135_596_800_000, 253_402_300_799_999))
def test_an_edit_date_is_the_exact_millisecond(millis: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert datetime_from_epoch_ms(millis) == expected


def test_a_record_splits_canonical_columns_from_attrs_and_drops_the_oid() -> None:
    feature = {"attributes": {"OBJECTID": 7, "PIN": "0794 ", "ZONING": "R-4",
                              "EDITED": 1614834367000, "BOOK": 12, "PAGE": None},
               "geometry": {"rings": []}}
    [record] = field_map().records([feature])
    assert record.oid == 7
    assert record.source_key == "0794"
    assert record.fields == {"parcel_id": "0794", "zoning_code": "R-4"}
    assert record.attrs == {"EDITED": "2021-03-04T05:06:07Z", "BOOK": 12, "PAGE": None}
    assert record.edited_at == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert record.raw is feature


def test_a_blank_or_null_key_is_missing() -> None:
    assert field_map().source_key({"PIN": "   "}) is None
    assert field_map().source_key({"PIN": None}) is None


def test_a_composite_key_is_a_json_array() -> None:
    assert field_map(("BOOK", "PAGE")).source_key({"BOOK": 12, "PAGE": 7}) == "[12,7]"
    assert field_map(("BOOK", "PAGE")).source_key({"BOOK": 12, "PAGE": None}) is None


@given(st.lists(st.one_of(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.integers(min_value=-30_610_224_000_001, max_value=253_402_300_800_000),
    st.none(), st.floats(allow_nan=False), st.text(max_size=5),
)))
def test_a_page_of_dates_reads_as_each_date_alone(values: list[Any]) -> None:
    assert iso_dates(values) == [normalize_value(v, DATE) for v in values]


def test_a_page_keeps_each_record_apart() -> None:
    features = [
        {"attributes": {"OBJECTID": 1, "PIN": "A", "EDITED": 1614834367123, "BOOK": 1}},
        {"attributes": {"OBJECTID": 2, "PIN": "B", "EDITED": None, "PAGE": "7  "}},
    ]
    first, second = field_map().records(features)
    assert first.attrs == {"EDITED": "2021-03-04T05:06:07.123Z", "BOOK": 1}
    assert second.attrs == {"EDITED": None, "PAGE": "7"}
    assert (first.source_key, second.source_key) == ("A", "B")
    assert second.edited_at is None


# Upstream JSON is parsed by orjson: integers stay within the 64-bit ranges it reads.
VALUES = st.one_of(st.none(), st.text(alphabet=" aZ-", max_size=3), st.booleans(),
                   st.integers(min_value=-(2**63), max_value=2**64 - 1),
                   st.integers(min_value=0, max_value=253_402_300_799_999),
                   st.floats(allow_nan=False),
                   st.sampled_from(["2021-03-04T00:06:07-05:00", "not a time"]))
ROWS = st.dictionaries(st.sampled_from(["OBJECTID", "PIN", "ZONING", "EDITED", "BOOK", "PAGE",
                                        "OFFSET"]), VALUES)


@given(st.lists(ROWS, max_size=6), st.sampled_from([("PIN",), ("BOOK", "PAGE"), ("EDITED",)]))
def test_a_page_reads_as_each_record_alone(rows: list[dict[str, Any]],
                                           key: tuple[str, ...]) -> None:
    """Dates are formatted a page column at a time; records lacking a field must not notice."""
    fields = FieldMap(
        field_types={"OBJECTID": "esriFieldTypeOID", "PIN": "esriFieldTypeString",
                     "ZONING": "esriFieldTypeString", "EDITED": "esriFieldTypeDate",
                     "BOOK": "esriFieldTypeInteger", "OFFSET": "esriFieldTypeTimestampOffset"},
        oid_field="OBJECTID", canonical={"parcel_id": "PIN", "zoning_code": "EDITED"},
        key=key, edit_date_field="EDITED")
    features = [{"attributes": row, "geometry": None} for row in rows]
    assert fields.records(features) == [fields.records([f])[0] for f in features]


@st.composite
def same_field_pages(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Pages as layers answer them: every record holds the same fields."""
    names = draw(st.sets(st.sampled_from(["OBJECTID", "PIN", "ZONING", "EDITED", "BOOK",
                                          "PAGE", "OFFSET"])))
    size = draw(st.integers(min_value=1, max_value=6))
    return [{name: draw(VALUES) for name in sorted(names)} for _ in range(size)]


@given(same_field_pages(), st.sampled_from([("PIN",), ("BOOK", "PAGE"), ("EDITED",)]))
def test_a_page_of_records_with_the_same_fields_reads_as_a_mixed_page(
        rows: list[dict[str, Any]], key: tuple[str, ...]) -> None:
    """Such a page is read column by column; a record of other fields makes it read
    record by record, and neither record may tell the difference."""
    fields = FieldMap(
        field_types={"OBJECTID": "esriFieldTypeOID", "PIN": "esriFieldTypeString",
                     "ZONING": "esriFieldTypeString", "EDITED": "esriFieldTypeDate",
                     "BOOK": "esriFieldTypeInteger", "OFFSET": "esriFieldTypeTimestampOffset"},
        oid_field="OBJECTID", canonical={"parcel_id": "PIN", "zoning_code": "EDITED",
                                         "zoning_desc": "BOOK"},
        key=key, edit_date_field="EDITED")
    features = [{"attributes": row, "geometry": None, "id": index}
                for index, row in enumerate(rows)]
    other = {"attributes": {"UNLIKE": "the others"}, "geometry": None}
    assert fields.records(features) == fields.records([*features, other])[:-1]
