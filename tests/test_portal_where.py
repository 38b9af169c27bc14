"""The portal's `where` subset: what it accepts, what it selects, what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from zoningsync.portal.county import County
from zoningsync.portal.where import (
    BoolOp,
    Compare,
    Constant,
    Expr,
    In,
    IsNull,
    Literal,
    WhereError,
    evaluate,
    parse,
)

JAN_2020_MS = 1_577_836_800_000


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("1=1", Constant(True)),
        ("1 = 0", Constant(False)),
        ("ZONING = 'R-4'", Compare("ZONING", "=", Literal("string", "R-4"))),
        ("owner = 'O''BRIEN PAT'", Compare("owner", "=", Literal("string", "O'BRIEN PAT"))),
        ("ACRES >= 0.5", Compare("ACRES", ">=", Literal("number", 0.5))),
        ("OBJECTID <> -3", Compare("OBJECTID", "<>", Literal("number", -3))),
        ("LAST_EDITED_DATE > TIMESTAMP '2020-01-01 00:00:00'",
         Compare("LAST_EDITED_DATE", ">", Literal("timestamp", JAN_2020_MS))),
        ("SALE_DATE < date '2020-01-01'",
         Compare("SALE_DATE", "<", Literal("date", JAN_2020_MS))),
        ("ZONING IN ('R-4', 'R-6')",
         In("ZONING", (Literal("string", "R-4"), Literal("string", "R-6")))),
        ("DEED_DATE IS NULL", IsNull("DEED_DATE", negate=False)),
        ("DEED_DATE is not null", IsNull("DEED_DATE", negate=True)),
        ("A = 1 OR B = 2 AND C = 3",
         BoolOp("OR", Compare("A", "=", Literal("number", 1)),
                BoolOp("AND", Compare("B", "=", Literal("number", 2)),
                       Compare("C", "=", Literal("number", 3))))),
        ("(A = 1 OR B = 2) AND C = 3",
         BoolOp("AND", BoolOp("OR", Compare("A", "=", Literal("number", 1)),
                              Compare("B", "=", Literal("number", 2))),
                Compare("C", "=", Literal("number", 3)))),
    ],
)
def test_supported_clauses_parse_to_their_meaning(clause: str, expected: Expr) -> None:
    assert parse(clause) == expected


@pytest.mark.parametrize(
    "clause",
    [
        "",
        "ZONING LIKE 'R-%'",
        "ACRES BETWEEN 1 AND 2",
        "NOT ZONING = 'R-4'",
        "UPPER(ZONING) = 'R-4'",
        "ACRES + 1 > 2",
        "ZONING = 'R-4",
        "(ZONING = 'R-4'",
        "ZONING = 'R-4')",
        "ZONING IN ()",
        "ZONING =",
        "ZONING 'R-4'",
        "DEED_DATE IS EMPTY",
        "LAST_EDITED_DATE > TIMESTAMP '2020-01-01'",
        "LAST_EDITED_DATE > TIMESTAMP 1577836800000",
        "SALE_DATE = DATE '2020-13-01'",
        "ZONING = 'R-4'; DROP TABLE parcels",
        "1 = ZONING",
    ],
)
def test_anything_outside_the_subset_is_refused(clause: str) -> None:
    with pytest.raises(WhereError):
        parse(clause)


def test_timestamp_literals_can_be_switched_off() -> None:
    with pytest.raises(WhereError):
        parse("LAST_EDITED_DATE > TIMESTAMP '2020-01-01 00:00:00'", timestamp_literals=False)
    assert parse("LAST_EDITED_DATE > 1577836800000", timestamp_literals=False) == Compare(
        "LAST_EDITED_DATE", ">", Literal("number", JAN_2020_MS))


@pytest.fixture(scope="module")
def county() -> County:
    return County(3000, seed=5)


def select(county: County, clause: str) -> np.ndarray:
    layer = county.parcels
    return evaluate(parse(clause), layer.columns.get, layer.size)


def served(county: County, name: str) -> list[object]:
    layer = county.parcels
    return layer.columns[name].serve(np.arange(layer.size, dtype=np.int64))


def test_string_equality_selects_rows_with_that_code(county: County) -> None:
    mask = select(county, "zoning = 'R-4'")
    codes = served(county, "ZONING")
    assert 0 < mask.sum() < len(codes)
    assert mask.tolist() == [code == "R-4" for code in codes]


def test_field_names_are_case_insensitive(county: County) -> None:
    assert (select(county, "Zoning = 'R-6'") == select(county, "ZONING = 'R-6'")).all()


def test_in_list_is_the_union_of_equalities(county: County) -> None:
    union = select(county, "ZONING = 'R-4' OR ZONING = 'CX-3' OR ZONING = 'AP'")
    assert (select(county, "ZONING IN ('R-4', 'CX-3', 'AP')") == union).all()


def test_timestamp_and_epoch_milliseconds_select_the_same_rows(county: County) -> None:
    by_literal = select(county, "LAST_EDITED_DATE >= TIMESTAMP '2020-01-01 00:00:00'")
    by_number = select(county, f"LAST_EDITED_DATE >= {JAN_2020_MS}")
    assert 0 < by_literal.sum() < len(by_literal)
    assert (by_literal == by_number).all()


def test_null_tests_split_the_rows(county: County) -> None:
    nulls = select(county, "DEED_DATE IS NULL")
    assert 0 < nulls.sum() < len(nulls)
    assert (nulls == ~select(county, "DEED_DATE IS NOT NULL")).all()
    assert [v is None for v in served(county, "DEED_DATE")] == nulls.tolist()


def test_date_only_fields_compare_with_date_literals(county: County) -> None:
    mask = select(county, "SALE_DATE < DATE '2000-01-01'")
    assert mask.sum() > 0
    dates = served(county, "SALE_DATE")
    assert mask.tolist() == [d is not None and str(d) < "2000-01-01" for d in dates]


def test_pins_compare_as_strings(county: County) -> None:
    pin = served(county, "PIN")[17]
    assert np.nonzero(select(county, f"PIN = '{pin}'"))[0].tolist() == [17]


def test_parentheses_change_the_grouping(county: County) -> None:
    grouped = select(county, "(ZONING = 'R-4' OR ZONING = 'R-6') AND ACRES > 0.5")
    loose = select(county, "ZONING = 'R-4' OR ZONING = 'R-6' AND ACRES > 0.5")
    assert grouped.sum() < loose.sum()


@pytest.mark.parametrize("clause", ["NO_SUCH_FIELD = 1", "ZONING = 4", "ACRES = 'big'",
                                    "ACRES > DATE '2020-01-01'"])
def test_unknown_fields_and_mismatched_types_are_refused(county: County, clause: str) -> None:
    with pytest.raises(WhereError):
        select(county, clause)
