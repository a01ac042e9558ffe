"""Check a parsed filter against the dataset group's schemas: fields, types and the rules of use.

The rules follow the reference's guidelines: one expression filters one dataset (chain the
others with ``|``); ``IF`` checks ``CurrentUser`` fields only; placeholder parameters cannot be
used with ``NOT IN``; unstructured text cannot be filtered; a filter uses at most
``MAX_FIELDS`` distinct dataset fields. ``Interactions`` conditions may use ``EVENT_TYPE``
(the reference's only one) and, beyond it, ``EVENT_VALUE`` and ``TIMESTAMP``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tastebud.errors import InvalidInput
from tastebud.filters.syntax import (
    COMPARISONS,
    Condition,
    Expression,
    Field,
    Filter,
    Number,
    Param,
    String,
    Timestamp,
    Value,
    conditions,
    render_value,
)
from tastebud.schema import DatasetKind, DatasetSchema, canonical_name, parse_timestamp

FieldKind = Literal["string", "categorical", "number", "timestamp"]
MAX_FIELDS = 10  # distinct dataset fields per filter (the reference's current guideline)
INTERACTION_FIELDS: dict[str, FieldKind] = {
    "EVENT_TYPE": "string",
    "EVENT_VALUE": "number",
    "TIMESTAMP": "timestamp",
}
_KINDS: dict[str, FieldKind] = {
    "string": "string", "categorical": "categorical", "numerical": "number",
    "timestamp": "timestamp",
}  # fmt: skip
_WHERE_DATASETS = {"ItemID": ("Items", "Interactions"), "UserID": ("Users", "Interactions")}
_OF_DATASET: dict[str, DatasetKind] = {
    "Items": "items", "CurrentItem": "items", "Users": "users", "CurrentUser": "users",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Schemas:
    """The schemas a filter is checked against (defaults when a group declares none)."""

    items: DatasetSchema = field(default_factory=lambda: DatasetSchema.default("items"))
    users: DatasetSchema = field(default_factory=lambda: DatasetSchema.default("users"))


def resolve(field: Field, schemas: Schemas) -> tuple[str, FieldKind]:
    """The field's schema name (reserved names in any case) and how it is compared.

    Raises:
        InvalidInput: unknown field, or a textual one (unstructured text is not filtered).
    """
    where = f"{field.dataset}.{field.name}"
    if field.dataset == "Interactions":
        name = field.name.upper()
        if name not in INTERACTION_FIELDS:
            raise InvalidInput(
                f"{where}: interactions are filtered by EVENT_TYPE, EVENT_VALUE or TIMESTAMP only"
            )
        return name, INTERACTION_FIELDS[name]
    dataset = _OF_DATASET[field.dataset]
    schema = schemas.items if dataset == "items" else schemas.users
    name = canonical_name(dataset, field.name)
    type_ = schema.types.get(name)
    if type_ is None:
        raise InvalidInput(
            f"{where}: unknown field; {dataset} fields are {', '.join(schema.types)} "
            "(declare it in the schema first)"
        )
    if type_ == "textual":
        raise InvalidInput(f"{where}: textual (unstructured text) fields cannot be filtered")
    return name, _KINDS[type_]


def validate(tree: Filter, schemas: Schemas) -> None:
    """Check every expression of ``tree`` against ``schemas``.

    Raises:
        InvalidInput: naming the expression, the field and the rule broken.
    """
    targets = {e.target for e in tree.expressions}
    if len(targets) > 1:
        raise InvalidInput("filter: all expressions must filter ItemID, or all UserID, not both")
    used = {
        (_OF_DATASET.get(f.dataset, "interactions"), resolve(f, schemas)[0])
        for e in tree.expressions for f in _fields(e)
    }  # fmt: skip
    if len(used) > MAX_FIELDS:
        raise InvalidInput(f"filter: {len(used)} distinct fields, at most {MAX_FIELDS}")
    for position, expression in enumerate(tree.expressions, 1):
        _check_expression(position, expression, schemas)


def _fields(expression: Expression) -> list[Field]:
    found = []
    for condition in [*conditions(expression.where), *expression.when]:
        found.append(condition.field)
        if isinstance(condition.operand, Field):
            found.append(condition.operand)
    return found


def _check_expression(position: int, expression: Expression, schemas: Schemas) -> None:
    where = f"expression {position}"
    allowed = _WHERE_DATASETS[expression.target]
    datasets = []
    for condition in conditions(expression.where):
        dataset = condition.field.dataset
        if dataset not in allowed:
            raise InvalidInput(
                f"{where}: {dataset}.{condition.field.name} cannot be filtered in an "
                f"{expression.target} WHERE clause; use {' or '.join(allowed)} fields"
                + (" (CurrentUser belongs in IF)" if dataset == "CurrentUser" else "")
            )
        datasets.append(dataset)
        _check_condition(where, condition, expression, schemas)
    if len(set(datasets)) > 1:
        raise InvalidInput(
            f"{where}: conditions on {' and '.join(dict.fromkeys(datasets))} in one expression; "
            "chain them as separate expressions with | instead"
        )
    if expression.when and expression.target == "UserID":
        raise InvalidInput(f"{where}: IF needs a current user, and UserID filters have none")
    for condition in expression.when:
        _check_condition(where, condition, expression, schemas)


def _check_condition(
    where: str, condition: Condition, expression: Expression, schemas: Schemas
) -> None:
    name = f"{condition.field.dataset}.{condition.field.name}"
    _, kind = resolve(condition.field, schemas)
    numeric = kind in ("number", "timestamp")
    if condition.operator in COMPARISONS and not numeric:
        raise InvalidInput(
            f"{where}: {name} {condition.operator}: comparisons need a numerical or timestamp "
            f"field, and {name} is {kind}"
        )
    operand = condition.operand
    if isinstance(operand, Field):
        _check_reference(where, name, kind, operand, expression, schemas)
        return
    if condition.operator in COMPARISONS and len(operand) != 1:
        raise InvalidInput(f"{where}: {name} {condition.operator} compares with one value")
    for value in operand:
        if isinstance(value, Param) and condition.operator == "NOT IN":
            raise InvalidInput(
                f"{where}: {name} NOT IN (${value.name}): parameters cannot be used with NOT IN; "
                "use IN with the opposite INCLUDE/EXCLUDE"
            )
        literal_value(value, kind, name=name, where=where)


def _check_reference(
    where: str, name: str, kind: FieldKind, operand: Field, expression: Expression,
    schemas: Schemas,
) -> None:  # fmt: skip
    if expression.target == "UserID":
        raise InvalidInput(f"{where}: {operand.dataset} fields cannot be used in UserID filters")
    _, other = resolve(operand, schemas)
    if (kind in ("number", "timestamp")) != (other in ("number", "timestamp")):
        raise InvalidInput(
            f"{where}: {name} is {kind} but {operand.dataset}.{operand.name} is {other}"
        )


def literal_value(value: Value, kind: FieldKind, *, name: str, where: str) -> str | float | None:
    """A literal as compared with a field of ``kind`` (None for a parameter).

    Raises:
        InvalidInput: the literal's type does not fit the field.
    """
    if isinstance(value, Param):
        return None
    numeric = kind in ("number", "timestamp")
    if isinstance(value, String) and not numeric:
        return value.value
    if isinstance(value, Number) and numeric:
        return float(value.value)
    if isinstance(value, Timestamp) and kind == "timestamp":
        return float(value.seconds)
    if isinstance(value, String) and kind == "timestamp":
        try:
            return float(parse_timestamp(value.value, name))
        except InvalidInput:
            pass
    expected = {"number": "a number", "timestamp": "epoch seconds or a date"}.get(kind, '"text"')
    raise InvalidInput(f"{where}: {name} is {kind}: expected {expected}, got {render_value(value)}")
