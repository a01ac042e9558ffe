"""A slow reference evaluator of filter expressions: plain Python over dicts, one row at a time.

It is written from the documented semantics (see ``tastebud.filters.compiler``) without numpy,
masks or caches, so the compiled filters can be checked against it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tastebud.errors import InvalidInput
from tastebud.filters.syntax import (
    And,
    Condition,
    Expression,
    Field,
    Filter,
    Number,
    Or,
    Param,
    Predicate,
    String,
    Timestamp,
    parameters,
)
from tastebud.schema import parse_timestamp

Row = Mapping[str, Any]


@dataclass
class World:
    """Everything a filter may read, as plain data (fields keyed by schema name)."""

    items: dict[str, dict[str, Any]]
    item_types: dict[str, str]  # schema types of item fields (CREATION_TIMESTAMP included)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_types: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # current user's: ITEM_ID, ...
    group_events: list[dict[str, Any]] = field(default_factory=list)  # USER_ID, EVENT_TYPE, ...
    user: dict[str, Any] | None = None  # the current user's fields
    current_item: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def allowed(tree: Filter, world: World, candidates: Sequence[str]) -> set[str]:
    """The candidates (item or user ids) the filter lets through."""
    values = {k.removeprefix("$"): _split(v) for k, v in world.values.items()}
    unknown = set(values) - set(parameters(tree))
    if unknown:
        raise InvalidInput(f"${min(unknown)} is not a parameter of the filter")
    includes: list[set[str]] = []
    excludes: list[set[str]] = []
    for expression in tree.expressions:
        missing = [p for p in parameters(expression) if not values.get(p)]
        if missing:
            if expression.action == "INCLUDE":
                raise InvalidInput(f"no value for ${missing[0]}")
            continue
        if expression.when and not _if_holds(expression, world, values):
            continue
        matched = _matches(expression, world, values, candidates)
        (includes if expression.action == "INCLUDE" else excludes).append(matched)
    result = set().union(*includes) if includes else set(candidates)
    return result - set().union(*excludes)


def _split(value: Any) -> list[str]:
    if isinstance(value, str):
        return next(csv.reader([value], skipinitialspace=True), [])
    return [v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v for v in value]


def _matches(
    expression: Expression, world: World, values: dict[str, list[str]], candidates: Sequence[str]
) -> set[str]:
    dataset = _first(expression.where).field.dataset
    if dataset == "Interactions":
        events = world.events if expression.target == "ItemID" else world.group_events
        key = "ITEM_ID" if expression.target == "ItemID" else "USER_ID"
        return {
            e[key]
            for e in events
            if _holds(expression.where, e, world, values) and e[key] in candidates
        }
    rows = world.items if dataset == "Items" else world.users
    return {c for c in candidates if _holds(expression.where, rows.get(c, {}), world, values)}


def _first(predicate: Predicate) -> Condition:
    return predicate if isinstance(predicate, Condition) else _first(predicate.terms[0])


def _holds(predicate: Predicate, row: Row, world: World, values: dict[str, list[str]]) -> bool:
    if isinstance(predicate, And):
        return all(_holds(t, row, world, values) for t in predicate.terms)
    if isinstance(predicate, Or):
        return any(_holds(t, row, world, values) for t in predicate.terms)
    return _condition(predicate, row, world, values)


def _if_holds(expression: Expression, world: World, values: dict[str, list[str]]) -> bool:
    if world.user is None:
        return False
    return all(_condition(c, world.user, world, values) for c in expression.when)


def _condition(condition: Condition, row: Row, world: World, values: dict[str, list[str]]) -> bool:
    kind = _kind(condition.field, world)
    name = _name(condition.field)
    have = _as_list(row.get(name), kind)
    wanted = _operand(condition, kind, world, values)
    if not wanted:
        return False
    if condition.field.dataset == "Interactions" and name == "EVENT_TYPE":
        wanted = [str(w).lower() for w in wanted]
        if "*" in wanted:  # every interaction, whatever its type (or none)
            return condition.operator in ("IN", "=")
        have = None if have is None else [h.lower() for h in have]
    if have is None:
        return False
    operator = condition.operator
    if operator in ("<", "<=", ">", ">="):
        if len(wanted) != 1:
            raise InvalidInput("compares with one value")
        left, right = have[0], wanted[0]
        return bool({"<": left < right, "<=": left <= right, ">": left > right,
                     ">=": left >= right}[operator])  # fmt: skip
    hit = any(h in wanted for h in have)
    return hit if operator in ("IN", "=") else not hit


def _name(field_: Field) -> str:
    upper = field_.name.upper()
    reserved = {"ITEM_ID", "USER_ID", "CREATION_TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE",
                "TIMESTAMP"}  # fmt: skip
    return upper if upper in reserved else field_.name


def _kind(field_: Field, world: World) -> str:
    name = _name(field_)
    if field_.dataset == "Interactions":
        return {"EVENT_TYPE": "string", "EVENT_VALUE": "numerical", "TIMESTAMP": "timestamp"}[name]
    if name in ("ITEM_ID", "USER_ID"):
        return "string"
    types = world.item_types if field_.dataset in ("Items", "CurrentItem") else world.user_types
    return types[name]


def _as_list(value: Any, kind: str) -> list[Any] | None:
    if value is None or value == "":
        return None
    if kind in ("numerical", "timestamp"):
        return [float(value)]
    if kind == "categorical":
        return [v for v in str(value).split("|") if v] or None
    return [str(value)]


def _operand(
    condition: Condition, kind: str, world: World, values: dict[str, list[str]]
) -> list[Any] | None:
    operand = condition.operand
    if isinstance(operand, Field):
        if operand.dataset == "CurrentItem":
            source = world.items.get(world.current_item or "", {})
        else:
            source = world.user or {}
        return _as_list(source.get(_name(operand)), _kind(operand, world))
    found: list[Any] = []
    for value in operand:
        if isinstance(value, Param):
            found += [_typed(v, kind) for v in values[value.name]]
        elif isinstance(value, String):
            found.append(_typed(value.value, kind))
        elif isinstance(value, Number):
            found.append(float(value.value))
        elif isinstance(value, Timestamp):
            found.append(float(value.seconds))
    return found


def _typed(text: str, kind: str) -> Any:
    if kind == "numerical":
        return float(text)
    if kind == "timestamp":
        return float(parse_timestamp(text, "value"))
    return text
