"""The filter expression syntax tree (frozen dataclasses) and :func:`render`, parsing's inverse.

``parse(render(tree)) == tree`` for every tree the parser can produce: ``And``/``Or`` hold two or
more terms and never directly nest a node of their own kind, and field names are kept as written.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

Action = Literal["INCLUDE", "EXCLUDE"]
Target = Literal["ItemID", "UserID"]
Dataset = Literal["Items", "Users", "Interactions", "CurrentUser", "CurrentItem"]
Operator = Literal["IN", "NOT IN", "=", "!=", "<", "<=", ">", ">="]

DATASETS: tuple[Dataset, ...] = ("Items", "Users", "Interactions", "CurrentUser", "CurrentItem")
OPERATORS: tuple[Operator, ...] = ("IN", "NOT IN", "=", "!=", "<", "<=", ">", ">=")
COMPARISONS: frozenset[Operator] = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class String:
    value: str


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float


@dataclass(frozen=True, slots=True)
class Timestamp:
    """An unquoted ISO-8601 date or time, e.g. ``2024-01-31`` or ``2024-01-31T12:00:00Z``."""

    seconds: int


@dataclass(frozen=True, slots=True)
class Param:
    """``$NAME``: values given with each request (``filterValues``)."""

    name: str


Value = String | Number | Timestamp | Param


@dataclass(frozen=True, slots=True)
class Field:
    dataset: Dataset
    name: str


@dataclass(frozen=True, slots=True)
class Condition:
    """``field operator operand``; the operand is a value list or a ``CurrentItem.``/
    ``CurrentUser.`` field."""

    field: Field
    operator: Operator
    operand: tuple[Value, ...] | Field


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Predicate, ...]


Predicate = Condition | And | Or


@dataclass(frozen=True, slots=True)
class Expression:
    """``INCLUDE|EXCLUDE ItemID|UserID WHERE where [IF condition AND ...]``."""

    action: Action
    target: Target
    where: Predicate
    when: tuple[Condition, ...] = ()  # the IF clause; empty without one


@dataclass(frozen=True, slots=True)
class Filter:
    """Expressions chained with ``|``."""

    expressions: tuple[Expression, ...]


def render(tree: Filter) -> str:
    """The canonical text of a syntax tree; parsing it gives the same tree back."""
    return " | ".join(_expression(e) for e in tree.expressions)


def conditions(predicate: Predicate) -> list[Condition]:
    """Every condition of a predicate, left to right."""
    if isinstance(predicate, Condition):
        return [predicate]
    return [c for term in predicate.terms for c in conditions(term)]


def parameters(tree: Filter | Expression) -> list[str]:
    """The ``$NAME`` parameters used, in order of first use, without duplicates."""
    expressions = tree.expressions if isinstance(tree, Filter) else (tree,)
    found: dict[str, None] = {}
    for expression in expressions:
        for condition in [*conditions(expression.where), *expression.when]:
            if isinstance(condition.operand, tuple):
                found |= {v.name: None for v in condition.operand if isinstance(v, Param)}
    return list(found)


def _expression(expression: Expression) -> str:
    text = f"{expression.action} {expression.target} WHERE {_predicate(expression.where)}"
    if expression.when:
        text += " IF " + " AND ".join(_condition(c) for c in expression.when)
    return text


def _predicate(predicate: Predicate, *, nested: bool = False) -> str:
    if isinstance(predicate, Condition):
        return _condition(predicate)
    joiner = " AND " if isinstance(predicate, And) else " OR "
    text = joiner.join(_predicate(term, nested=True) for term in predicate.terms)
    return f"({text})" if nested else text


def _condition(condition: Condition) -> str:
    field = f"{condition.field.dataset}.{condition.field.name}"
    operand = condition.operand
    if isinstance(operand, Field):
        right = f"{operand.dataset}.{operand.name}"
    elif condition.operator in ("IN", "NOT IN") or len(operand) != 1:
        right = "(" + ", ".join(render_value(v) for v in operand) + ")"
    else:
        right = render_value(operand[0])
    return f"{field} {condition.operator} {right}"


def render_value(value: Value) -> str:
    """One literal or parameter as it is written in an expression."""
    if isinstance(value, String):
        return '"' + value.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Param):
        return f"${value.name}"
    if isinstance(value, Timestamp):
        moment = dt.datetime.fromtimestamp(value.seconds, tz=dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    number = value.value
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"a filter number must be finite, got {number!r}")
    return repr(number)
