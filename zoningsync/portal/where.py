"""The small part of ArcGIS `where` SQL the simulated portal understands.

Accepted, and nothing more: `1=1` (any comparison of two numbers);
`<field> <op> <literal>` with =, <>, >, >=, <, <=; literals that are numbers,
'strings' ('' escapes a quote), TIMESTAMP 'YYYY-MM-DD HH:MM:SS' or
DATE 'YYYY-MM-DD'; `<field> IN (literal, ...)`; `<field> IS [NOT] NULL`; AND, OR
(AND binds tighter) and parentheses. Keywords and field names are
case-insensitive. Anything else (LIKE, BETWEEN, NOT, functions, arithmetic)
raises `WhereError`, which the portal answers the way ArcGIS does: error JSON
400 "'where' parameter is invalid" with HTTP 200.

Parsing is separate from evaluation so that the grammar can be specified by a
table of clauses without any data behind it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?(?![A-Za-z_]))|(?P<str>'(?:[^']|'')*')"
    r"|(?P<op><>|>=|<=|=|>|<)|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_CONSTANT = {
    "=": operator.eq, "<>": operator.ne, ">": operator.gt, ">=": operator.ge,
    "<": operator.lt, "<=": operator.le,
}
_RESERVED = {"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "BETWEEN", "TIMESTAMP", "DATE"}


class WhereError(ValueError):
    """The where clause is outside the supported subset."""


@dataclass(frozen=True)
class Literal:
    """A typed literal; dates are epoch milliseconds (UTC)."""

    kind: str  # "number" | "string" | "timestamp" | "date"
    value: int | float | str


@dataclass(frozen=True)
class Constant:
    result: bool


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Literal


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class IsNull:
    field: str
    negate: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND" | "OR"
    left: Expr
    right: Expr


Expr = Constant | Compare | In | IsNull | BoolOp


class Predicates(Protocol):
    """What evaluation needs of a column (see `zoningsync.portal.columns`)."""

    def compare(self, op: str, value: Literal) -> Mask: ...

    def isin(self, values: Sequence[Literal]) -> Mask: ...

    def isnull(self) -> Mask: ...


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise WhereError(f"cannot read the where clause at {text[pos:pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def parse(where: str, *, timestamp_literals: bool = True) -> Expr:
    """The clause as a tree; raises WhereError on anything outside the subset."""
    tokens = tokenize(where)
    if not tokens:
        raise WhereError("the where clause is empty")
    return _Parser(tokens, timestamp_literals).parse()


def evaluate(expr: Expr, columns: Callable[[str], Predicates | None], size: int) -> Mask:
    """The rows (of `size`) that the clause selects; unknown fields raise WhereError."""
    if isinstance(expr, Constant):
        return np.full(size, expr.result)
    if isinstance(expr, BoolOp):
        left = evaluate(expr.left, columns, size)
        right = evaluate(expr.right, columns, size)
        return left & right if expr.op == "AND" else left | right
    column = columns(expr.field.upper())
    if column is None:
        raise WhereError(f"unknown field {expr.field}")
    if isinstance(expr, Compare):
        return column.compare(expr.op, expr.value)
    if isinstance(expr, In):
        return column.isin(expr.values)
    nulls = column.isnull()
    return ~nulls if expr.negate else nulls


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], timestamp_literals: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.timestamp_literals = timestamp_literals

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise WhereError("the where clause ends too early")
        self.pos += 1
        return token

    def expect(self, token: tuple[str, str]) -> None:
        if self.take() != token:
            raise WhereError(f"expected {token[1]!r}")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self.disjunction()
        extra = self.peek()
        if extra is not None:
            raise WhereError(f"unexpected {extra[1]!r}")
        return expr

    def disjunction(self) -> Expr:
        expr = self.conjunction()
        while self.keyword("OR"):
            expr = BoolOp("OR", expr, self.conjunction())
        return expr

    def conjunction(self) -> Expr:
        expr = self.term()
        while self.keyword("AND"):
            expr = BoolOp("AND", expr, self.term())
        return expr

    def term(self) -> Expr:
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            expr = self.disjunction()
            self.expect(("punct", ")"))
            return expr
        if token and token[0] == "num":
            left = float(self.take()[1])
            op, right = self.take(), self.take()
            if op[0] != "op" or right[0] != "num":
                raise WhereError("only constant comparisons like 1=1 may start with a number")
            return Constant(bool(_CONSTANT[op[1]](left, float(right[1]))))
        kind, name = self.take()
        if kind != "word" or name.upper() in _RESERVED:
            raise WhereError(f"expected a field name, got {name!r}")
        if self.keyword("IS"):
            negate = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise WhereError("expected NULL after IS")
            return IsNull(name, negate)
        if self.keyword("IN"):
            self.expect(("punct", "("))
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.literal())
            self.expect(("punct", ")"))
            return In(name, tuple(values))
        op = self.take()
        if op[0] != "op":
            raise WhereError(f"expected a comparison after {name}, got {op[1]!r}")
        return Compare(name, op[1], self.literal())

    def literal(self) -> Literal:
        kind, text = self.take()
        if kind == "num":
            return Literal("number", float(text) if "." in text else int(text))
        if kind == "str":
            return Literal("string", text[1:-1].replace("''", "'"))
        word = text.upper()
        if kind == "word" and word in ("TIMESTAMP", "DATE"):
            if not self.timestamp_literals:
                raise WhereError(f"{word} literals are not supported by this server")
            kind, quoted = self.take()
            if kind != "str":
                raise WhereError(f"{word} needs a quoted value")
            fmt = "%Y-%m-%d %H:%M:%S" if word == "TIMESTAMP" else "%Y-%m-%d"
            try:
                moment = datetime.strptime(quoted[1:-1], fmt).replace(tzinfo=UTC)
            except ValueError as exc:
                raise WhereError(f"bad {word} literal {quoted}") from exc
            return Literal(word.lower(), int(moment.timestamp()) * 1000)
        raise WhereError(f"expected a value, got {text!r}")
