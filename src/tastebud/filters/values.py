"""Request values: ``filterValues`` checked and typed, stored field values as lists, and the
comparisons both the masks and the ``IF`` clause use."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tastebud.errors import InvalidInput
from tastebud.filters.catalog import BoolArray, FloatArray
from tastebud.filters.parser import MAX_PARAMETERS
from tastebud.filters.syntax import Operator
from tastebud.filters.validate import FieldKind
from tastebud.schema import parse_timestamp

MAX_VALUES_PER_PARAMETER = 100
MAX_VALUE_LENGTH = 1000  # characters, as the reference's filterValues
NUMERIC = ("number", "timestamp")
COMPARE: dict[Operator, Callable[[FloatArray, float], BoolArray]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
}  # fmt: skip


def compare_column(
    column: FloatArray, operator: Operator, wanted: list[Any], where: str
) -> BoolArray:
    """Rows of a numeric column meeting ``operator wanted`` (NaN, i.e. missing, never does)."""
    if operator in COMPARE:
        if len(wanted) != 1:
            raise InvalidInput(f"filterValues: {where} compares with one value, got {len(wanted)}")
        result: BoolArray = COMPARE[operator](column, wanted[0])
        return result
    hit = column == wanted[0] if len(wanted) == 1 else np.isin(column, wanted)
    return hit if operator in ("IN", "=") else ~np.isnan(column) & ~hit


def holds(operator: Operator, have: list[Any], wanted: list[Any]) -> bool:
    """One current-user condition, on plain values (the IF clause)."""
    if operator in COMPARE:
        if len(wanted) != 1:
            raise InvalidInput(f"filterValues: IF ... {operator} compares with one value")
        return bool(COMPARE[operator](np.array([have[0]]), wanted[0])[0])
    hit = any(value in wanted for value in have)
    return hit if operator in ("IN", "=") else not hit


def field_values(value: Any, kind: FieldKind) -> list[Any] | None:
    """A stored field value as the list a condition compares (None when missing)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if kind in NUMERIC:
        try:
            return [float(value)]
        except (TypeError, ValueError):
            return None
    if kind == "categorical":
        return [v for v in str(value).split("|") if v] or None
    return [str(value)]


def convert(value: str, kind: FieldKind, param: str) -> str | float:
    """One ``$param`` value typed for a field of ``kind`` (InvalidInput names it if it is not)."""
    where = f"filterValues.${param}"
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{where}: expected a number, got {value!r}") from None
        if not np.isfinite(number):
            raise InvalidInput(f"{where}: expected a finite number, got {value!r}")
        return number
    if kind == "timestamp":
        return float(parse_timestamp(value, where))
    return value


def clean_values(
    values: Mapping[str, Sequence[str] | str], known: Sequence[str], name: str
) -> dict[str, list[str]]:
    """Request values checked against the filter's parameters and the limits."""
    if len(values) > MAX_PARAMETERS:
        raise InvalidInput(f"filterValues: {len(values)} parameters, at most {MAX_PARAMETERS}")
    clean: dict[str, list[str]] = {}
    for raw_key, raw_values in values.items():
        key = raw_key.removeprefix("$")
        if key not in known:
            listed = ", ".join("$" + p for p in known) or "none"
            raise InvalidInput(
                f"filterValues: ${key} is not a parameter of filter {name!r} (it has {listed})"
            )
        if isinstance(raw_values, str):  # the reference's form: '"click","stream"'
            raw_values = next(csv.reader([raw_values], skipinitialspace=True), [])
        if len(raw_values) > MAX_VALUES_PER_PARAMETER:
            raise InvalidInput(
                f"filterValues.${key}: {len(raw_values)} values, at most {MAX_VALUES_PER_PARAMETER}"
            )
        clean[key] = [_unquoted(str(v), key) for v in raw_values]
    return clean


def _unquoted(value: str, key: str) -> str:
    """``"click"`` -> ``click``: values written the reference's way (quoted) also work."""
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"filterValues.${key}: a value over {MAX_VALUE_LENGTH} characters")
    stripped = value.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return stripped[1:-1]
    return value
