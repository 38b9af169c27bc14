"""Typed attribute columns: how a layer's values are stored, filtered and served.

A county keeps each attribute as a compact numpy array (codes into a label table
for repetitive strings, int64 epoch milliseconds for dates), never as a million
Python strings. A column answers the three questions the portal asks of it: the
served values of a page of rows (`serve`), the rows a `where` predicate selects
(`compare`, `isin`, `isnull`), and its ArcGIS field description.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from zoningsync.portal.where import Literal, WhereError

Mask = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
NULL_MS = np.iinfo(np.int64).min  # an absent date in a date column
DAY_MS = 86_400_000

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "<>": operator.ne, ">": operator.gt, ">=": operator.ge,
    "<": operator.lt, "<=": operator.le,
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    alias: str
    length: int | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "alias": self.alias}
        if self.length is not None:
            out["length"] = self.length
        return out


class Column:
    """One served attribute; subclasses know how it is stored."""

    field: Field

    def serve(self, rows: IntArray) -> list[Any]:
        raise NotImplementedError

    def compare(self, op: str, value: Literal) -> Mask:
        raise NotImplementedError

    def sort_key(self, rows: IntArray) -> npt.NDArray[Any]:
        """Values of the rows that sort like the served values (for orderByFields)."""
        return np.array(self.serve(rows), dtype=str)

    def isin(self, values: Sequence[Literal]) -> Mask:
        masks = [self.compare("=", v) for v in values]
        return np.logical_or.reduce(masks) if masks else np.zeros(0, dtype=bool)

    def isnull(self) -> Mask:
        raise NotImplementedError


class NumberColumn(Column):
    """Integers or doubles; with `null` a sentinel that means no value."""

    def __init__(self, field: Field, values: Callable[[], npt.NDArray[Any]],
                 null: int | None = None) -> None:
        self.field = field
        self._values = values
        self._null = null

    def serve(self, rows: IntArray) -> list[Any]:
        served: list[Any] = self._values()[rows].tolist()
        if self._null is not None:
            served = [None if v == self._null else v for v in served]
        return served

    def sort_key(self, rows: IntArray) -> npt.NDArray[Any]:
        return self._values()[rows]

    def _operand(self, value: Literal) -> int | float:
        if isinstance(value.value, str):
            raise WhereError(f"{self.field.name} is numeric; {value.value!r} is text")
        if value.kind in ("timestamp", "date") and self.field.type != "esriFieldTypeDate":
            raise WhereError(f"{self.field.name} is not a date field")
        return value.value

    def compare(self, op: str, value: Literal) -> Mask:
        values = self._values()
        mask: Mask = np.asarray(OPS[op](values, self._operand(value)), dtype=np.bool_)
        return mask & ~self.isnull()

    def isnull(self) -> Mask:
        values = self._values()
        if self._null is None:
            return np.zeros(len(values), dtype=bool)
        return np.asarray(values == self._null)


class DateOnlyColumn(Column):
    """esriFieldTypeDateOnly: served as 'YYYY-MM-DD', stored as epoch ms of the day."""

    def __init__(self, field: Field, values: Callable[[], IntArray]) -> None:
        self.field = field
        self._values = values

    def serve(self, rows: IntArray) -> list[Any]:
        ms = self._values()[rows]
        text: list[str] = (ms // DAY_MS).astype("datetime64[D]").astype(str).tolist()
        return [None if m == NULL_MS else t for m, t in zip(ms.tolist(), text, strict=True)]

    def sort_key(self, rows: IntArray) -> npt.NDArray[Any]:
        return self._values()[rows]

    def compare(self, op: str, value: Literal) -> Mask:
        if value.kind == "string":
            try:
                day = np.datetime64(str(value.value), "D").astype(np.int64)
            except ValueError as exc:
                raise WhereError(f"{value.value!r} is not a date") from exc
            operand = int(day) * DAY_MS
        elif value.kind in ("date", "timestamp"):
            operand = int(value.value) // DAY_MS * DAY_MS
        else:
            raise WhereError(f"{self.field.name} is a date; compare it with DATE '...'")
        days = self._values() // DAY_MS * DAY_MS
        return np.asarray(OPS[op](days, operand), dtype=np.bool_) & ~self.isnull()

    def isnull(self) -> Mask:
        return np.asarray(self._values() == NULL_MS)


class CategoryColumn(Column):
    """Repetitive strings: codes into a label table (a None label is a null)."""

    def __init__(self, field: Field, codes: Callable[[], npt.NDArray[Any]],
                 labels: Sequence[str | None]) -> None:
        self.field = field
        self._codes = codes
        self.labels = list(labels)

    def serve(self, rows: IntArray) -> list[Any]:
        labels = self.labels
        return [labels[c] for c in self._codes()[rows].tolist()]

    def sort_key(self, rows: IntArray) -> npt.NDArray[Any]:
        ranks = np.argsort(np.argsort(np.array([label or "" for label in self.labels])))
        return np.asarray(ranks[self._codes()[rows]])

    def compare(self, op: str, value: Literal) -> Mask:
        if not isinstance(value.value, str):
            raise WhereError(f"{self.field.name} is text; compare it with a 'string'")
        text = value.value
        hits = np.array([label is not None and bool(OPS[op](label, text))
                         for label in self.labels])
        return np.asarray(hits[self._codes()])

    def isnull(self) -> Mask:
        nulls = np.array([label is None for label in self.labels])
        return np.asarray(nulls[self._codes()])


class TextColumn(Column):
    """Strings made from numbers (PINs, addresses); filtering materializes them once."""

    def __init__(self, field: Field, make: Callable[[IntArray], list[str]],
                 size: Callable[[], int]) -> None:
        self.field = field
        self._make = make
        self._size = size

    def serve(self, rows: IntArray) -> list[Any]:
        return self._make(rows)

    def compare(self, op: str, value: Literal) -> Mask:
        if not isinstance(value.value, str):
            raise WhereError(f"{self.field.name} is text; compare it with a 'string'")
        texts = np.array(self._make(np.arange(self._size(), dtype=np.int64)), dtype=object)
        return np.asarray(OPS[op](texts, value.value), dtype=np.bool_)

    def isnull(self) -> Mask:
        return np.zeros(self._size(), dtype=bool)
