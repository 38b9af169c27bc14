"""The OData v3 query options the Legistar web API answers: $filter, $orderby, $top, $skip.

`$filter` is parsed into a predicate over one JSON object: comparisons (`eq ne gt
ge lt le`) of a property with a literal (`datetime'2024-01-01T00:00:00'`,
`'text'` with `''` for a quote, numbers, `null`, `true`, `false`), combined with
`and`, `or`, `not` and parentheses, and the string functions `substringof`,
`startswith` and `endswith`: what python-legistar-scraper and Councilmatic send
(`MatterLastModifiedUtc gt datetime'…' or MatterIntroDate gt datetime'…'`,
`(MatterTypeName eq 'Ordinance' or MatterTypeName eq 'Resolution')`).
Comparisons with null are false except `eq null` and `ne null`, as in OData.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]
Predicate = Callable[[Row], bool]
Operand = Callable[[Row], Any]

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le,
}
FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "substringof": lambda needle, haystack: needle in haystack,
    "startswith": str.startswith,
    "endswith": str.endswith,
}
TOKEN = re.compile(r"""\s*(?:
      datetime'(?P<datetime>[^']*)'
    | '(?P<string>(?:[^']|'')*)'
    | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_]\w*)
    )""", re.VERBOSE)
CONSTANTS: dict[str, Any] = {"null": None, "true": True, "false": False}


class ODataError(ValueError):
    """A query option the API refuses, with the message the API answers."""


@dataclass(frozen=True)
class Token:
    kind: str
    value: Any


def parse_filter(text: str, properties: Sequence[str]) -> Predicate:
    """The predicate of a $filter expression over objects with these properties."""
    parser = _Parser(_tokens(text), frozenset(properties))
    predicate = parser.expression()
    if parser.peek() is not None:
        raise ODataError(f"Syntax error at position {parser.position} in '{text}'.")
    return predicate


def order_key(text: str, properties: Sequence[str]) -> list[tuple[str, bool]]:
    """$orderby as (property, descending) pairs."""
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if words[0] not in properties or len(words) > 2 or \
                (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ODataError(f"Could not find a property named '{words[0]}' on type "
                             "'LegistarWebAPI.Models.v1.Matter'.")
        keys.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return keys


def sort_rows(rows: list[Row], keys: list[tuple[str, bool]]) -> list[Row]:
    """Stable sort, last key first; nulls sort before any value, as SQL Server does."""
    for name, descending in reversed(keys):
        rows = sorted(rows, key=lambda row: (row[name] is not None, row[name] or 0),
                      reverse=descending)
    return rows


def _tokens(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ODataError(f"Syntax error at position {position} in '{text}'.")
        position = match.end()
        kind = match.lastgroup or ""
        value: Any = match.group(kind)
        if kind == "datetime":
            value = _datetime(value)
        elif kind == "string":
            value = value.replace("''", "'")
        elif kind == "number":
            value = float(value) if "." in value else int(value)
        tokens.append(Token(kind, value))
    return tokens


def _datetime(text: str) -> datetime:
    """A naive UTC datetime, the only kind the API stores."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ODataError(f"Unrecognized 'Edm.DateTime' literal 'datetime'{text}''.") from exc
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


class _Parser:
    """Recursive descent: or → and → not → comparison | function | ( or )."""

    def __init__(self, tokens: list[Token], properties: frozenset[str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.properties = properties

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise ODataError("The $filter expression ends too early.")
        self.position += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "word" and token.value in words:
            self.position += 1
            return str(token.value)
        return None

    def punct(self, mark: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.value != mark:
            raise ODataError(f"'{mark}' expected at position {self.position}.")

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.keyword("or"):
            right = self.conjunction()
            left = _either(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.negation()
        while self.keyword("and"):
            right = self.negation()
            left = _both(left, right)
        return left

    def negation(self) -> Predicate:
        if self.keyword("not"):
            inner = self.negation()
            return lambda row: not inner(row)
        token = self.peek()
        if token is not None and token.kind == "punct" and token.value == "(":
            self.take()
            inner = self.expression()
            self.punct(")")
            return inner
        if token is not None and token.kind == "word" and token.value in FUNCTIONS:
            return self.function()
        return self.comparison()

    def function(self) -> Predicate:
        test = FUNCTIONS[self.take().value]
        self.punct("(")
        first = self.operand()
        self.punct(",")
        second = self.operand()
        self.punct(")")
        predicate: Predicate = lambda row: _strings(test, first(row), second(row))  # noqa: E731
        if self.keyword("eq"):
            wanted = self.operand()
            return lambda row: predicate(row) == wanted(row)
        return predicate

    def comparison(self) -> Predicate:
        left = self.operand()
        op = self.keyword(*COMPARISONS)
        if op is None:
            raise ODataError(f"A comparison operator expected at position {self.position}.")
        right = self.operand()
        compare = COMPARISONS[op]
        return lambda row: _compare(compare, op, left(row), right(row))

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "word" and token.value in CONSTANTS:
            constant = CONSTANTS[token.value]
            return lambda row: constant
        if token.kind == "word":
            name = str(token.value)
            if name not in self.properties:
                raise ODataError(f"Could not find a property named '{name}' on type "
                                 "'LegistarWebAPI.Models.v1.Matter'.")
            return lambda row: row.get(name)
        if token.kind == "punct":
            raise ODataError(f"Unexpected '{token.value}' at position {self.position}.")
        literal = token.value
        return lambda row: literal


def _either(left: Predicate, right: Predicate) -> Predicate:
    return lambda row: left(row) or right(row)


def _both(left: Predicate, right: Predicate) -> Predicate:
    return lambda row: left(row) and right(row)


def _compare(compare: Callable[[Any, Any], bool], op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return compare(left, right) if op in ("eq", "ne") else False
    if isinstance(left, datetime) and isinstance(right, str):
        right = _datetime(right)
    elif isinstance(right, datetime) and isinstance(left, str):
        left = _datetime(left)
    try:
        return compare(left, right)
    except TypeError as exc:
        raise ODataError(f"The operands of '{op}' have incompatible types.") from exc


def _strings(test: Callable[[str, str], bool], first: Any, second: Any) -> bool:
    if not isinstance(first, str) or not isinstance(second, str):
        return False
    return test(first, second)
