"""Request filters, validated once against the scene into a `Filters` object that later
layers trust: equality and any-of on keywords and keyword lists, ranges on integers, floats
and datetimes, booleans; AND-combined. The Milvus expression is built only here, with every
string value through `quote`. The limits come from `functions.core.limits`; neither the
search service, the match layer nor the vector store checks them again."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from functions.core.errors import InvalidRequest
from functions.core.limits import FILTER_MAX_VALUES, FILTER_VALUE_MAX_LENGTH, MAX_FILTER_FIELDS
from functions.core.scenes import InvalidDocument, Scene, parse_datetime

RANGE_OPERATORS = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
NUMERIC = frozenset({"integer", "float", "datetime"})


@dataclass(frozen=True)
class Clause:
    """One field's condition: any of `values`, or a range of `bounds` (operator -> value)."""

    field: str
    type: str
    values: tuple[Any, ...] = ()
    bounds: tuple[tuple[str, float | int], ...] = ()

    def expression(self) -> str:
        if self.bounds:
            return " and ".join(
                f"{self.field} {RANGE_OPERATORS[op]} {v!r}" for op, v in self.bounds
            )
        if self.type == "keyword_list":
            return f"ARRAY_CONTAINS_ANY({self.field}, [{_literals(self.values)}])"
        if self.type == "boolean":
            return f"{self.field} == {'true' if self.values[0] else 'false'}"
        return f"{self.field} in [{_literals(self.values)}]"


@dataclass(frozen=True)
class Filters:
    """Checked filters of one request (empty: no filtering)."""

    clauses: tuple[Clause, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.clauses)

    @property
    def fields(self) -> dict[str, str]:
        """Field -> declared type of every filtered field."""
        return {c.field: c.type for c in self.clauses}

    def expression(self) -> str:
        """The Milvus boolean expression (fields in name order, AND-ed)."""
        return " and ".join(f"({c.expression()})" for c in self.clauses)

    def canonical(self) -> list[Any]:
        """A JSON-able form that is equal for equal filters (for page tokens)."""
        return [[c.field, list(c.values), [list(b) for b in c.bounds]] for c in self.clauses]


def compile_filters(
    scene: Scene,
    raw: Mapping[str, Any] | None,
    *,
    max_fields: int = MAX_FILTER_FIELDS,
    max_values: int = FILTER_MAX_VALUES,
) -> Filters:
    """`raw` (`{field: value | [values] | {gte, gt, lte, lt}}`) checked against the scene's
    filterable fields; `InvalidRequest` (422) names the field at fault."""
    if not raw:
        return Filters()
    if len(raw) > max_fields:
        raise InvalidRequest(f"filters: at most {max_fields} fields")
    clauses = []
    for name, value in sorted(raw.items()):
        if name not in scene.filterable:
            known = ", ".join(scene.filterable) or "none"
            raise InvalidRequest(
                f"filters.{name}: cannot filter on {name!r}; filterable fields: {known}"
            )
        kind = scene.fields[name].type
        clauses.append(_clause(f"filters.{name}", name, kind, value, max_values))
    return Filters(tuple(clauses))


def keyword_filters(raw: Mapping[str, Sequence[str]]) -> Filters:
    """`{field: [keywords]}` on keyword-list fields as `Filters`, for callers that build their
    filters in code rather than from a request (the indexers, tests): no scene to check the
    fields against; the store refuses a field its collection does not hold."""
    if any(not values for values in raw.values()):
        raise InvalidRequest("a keyword filter needs at least one value")
    return Filters(
        tuple(
            Clause(name, "keyword_list", values=tuple(_checked_text(name, v) for v in values))
            for name, values in sorted(raw.items())
        )
    )


def _clause(where: str, name: str, kind: str, value: Any, max_values: int) -> Clause:
    if isinstance(value, BaseModel):  # a FilterRange of a parsed request
        value = value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        if kind not in NUMERIC:
            raise InvalidRequest(f"{where}: a range needs a number or datetime field ({kind})")
        return Clause(name, kind, bounds=_bounds(where, kind, value))
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not 1 <= len(values) <= max_values:
        raise InvalidRequest(f"{where}: give 1 to {max_values} values")
    if kind == "boolean" and len(values) != 1:
        raise InvalidRequest(f"{where}: one boolean, true or false")
    return Clause(name, kind, values=tuple(_value(where, kind, v) for v in values))


def _bounds(where: str, kind: str, value: Mapping[str, Any]) -> tuple[tuple[str, float | int], ...]:
    unknown = sorted(set(value) - set(RANGE_OPERATORS))
    if unknown or not value:
        raise InvalidRequest(
            f"{where}: a range takes gte, gt, lte and lt (got {unknown or 'none'})"
        )
    bounds = tuple(
        (op, _value(f"{where}.{op}", kind, value[op]))
        for op in RANGE_OPERATORS
        if value.get(op) is not None
    )
    if not bounds:
        raise InvalidRequest(f"{where}: a range needs at least one bound")
    return bounds


def _value(where: str, kind: str, value: Any) -> Any:
    """One filter value as the field's type (datetimes as epoch seconds)."""
    wrong = InvalidRequest(f"{where}: expected {kind}, got {type(value).__name__}")
    if kind in ("keyword", "keyword_list"):
        if not isinstance(value, str):
            raise wrong
        return _checked_text(where, value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "datetime":
        try:
            return parse_datetime(where, value)
        except InvalidDocument as exc:
            raise InvalidRequest(exc.message) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong
    if kind == "integer":
        if isinstance(value, float):
            if not value.is_integer():
                raise wrong
            value = int(value)
        if abs(value) >= 2**63:
            raise InvalidRequest(f"{where}: out of the 64-bit integer range")
        return value
    if not math.isfinite(value):
        raise InvalidRequest(f"{where}: must be finite")
    return float(value)


def _checked_text(where: str, value: str) -> str:
    if len(value) > FILTER_VALUE_MAX_LENGTH:
        raise InvalidRequest(f"{where}: values are limited to {FILTER_VALUE_MAX_LENGTH} characters")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidRequest(f"{where}: values must not contain control characters or surrogates")
    return value


def _literals(values: tuple[Any, ...]) -> str:
    return ", ".join(quote(v) if isinstance(v, str) else repr(v) for v in values)


def quote(value: str) -> str:
    """A Milvus string literal: double quotes, backslash escapes; nothing else is special."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
