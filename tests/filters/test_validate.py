"""Checks against the group's schemas: unknown datasets and fields, types, rules of use."""

from __future__ import annotations

import pytest

from tastebud.errors import InvalidInput
from tastebud.filters import Schemas, parse, validate
from tastebud.schema import DatasetSchema

SCHEMAS = Schemas(
    items=DatasetSchema.build(
        "items", {"GENRES": "categorical", "PRICE": "numerical", "COLOR": "string",
                  "BLURB": "textual", "RELEASED": "timestamp"},
    ),
    users=DatasetSchema.build("users", {"TIER": "categorical", "AGE": "numerical"}),
)  # fmt: skip

VALID = [
    'INCLUDE ItemID WHERE Items.GENRES IN ("a") AND Items.PRICE < 10',
    "INCLUDE ItemID WHERE Items.genres IN ($G)",  # wrong case of a declared field: see below
    'EXCLUDE ItemID WHERE Interactions.event_type IN ("click") AND Interactions.EVENT_VALUE > 1',
    "INCLUDE ItemID WHERE Items.creation_timestamp > 2024-01-01",
    'INCLUDE ItemID WHERE Items.RELEASED >= "2024-01-01T10:00:00Z"',
    "INCLUDE ItemID WHERE Items.PRICE <= CurrentItem.PRICE AND Items.GENRES IN CurrentItem.GENRES",
    "INCLUDE ItemID WHERE Items.GENRES IN CurrentUser.TIER",
    'INCLUDE ItemID WHERE Items.PRICE > 5 IF CurrentUser.AGE >= 18 AND CurrentUser.TIER = "gold"',
    "INCLUDE UserID WHERE Users.TIER IN ($T) | EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN "
    '("churn")',
    'INCLUDE ItemID WHERE Items.item_id IN ("i1") OR Items.COLOR != "red"',
]


@pytest.mark.parametrize("text", [t for t in VALID if "genres" not in t])
def test_valid_expressions(text: str) -> None:
    validate(parse(text), SCHEMAS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('INCLUDE ItemID WHERE Items.COLOUR IN ("red")',
         "Items.COLOUR: unknown field; items fields are ITEM_ID, CREATION_TIMESTAMP, GENRES"),
        ("INCLUDE ItemID WHERE Items.genres IN ($G)", "Items.genres: unknown field"),
        ("INCLUDE ItemID WHERE CurrentUser.AGE > 3",
         "CurrentUser.AGE cannot be filtered in an ItemID WHERE clause; use Items or "
         "Interactions fields (CurrentUser belongs in IF)"),
        ('INCLUDE ItemID WHERE Items.A IN ("x") IF CurrentUser.NOPE = "x"',
         "Items.A: unknown field"),
        ('INCLUDE ItemID WHERE Items.PRICE > 1 IF CurrentUser.NOPE = "x"',
         "CurrentUser.NOPE: unknown field; users fields are USER_ID, TIER, AGE"),
        ('INCLUDE ItemID WHERE Interactions.DEVICE IN ("tv")',
         "Interactions.DEVICE: interactions are filtered by EVENT_TYPE, EVENT_VALUE or TIMESTAMP"),
        ('INCLUDE ItemID WHERE Items.BLURB IN ("x")',
         "Items.BLURB: textual (unstructured text) fields cannot be filtered"),
        ('INCLUDE ItemID WHERE Items.GENRES IN ("a") AND Interactions.EVENT_TYPE IN ("click")',
         "expression 1: conditions on Items and Interactions in one expression; chain them"),
        ('INCLUDE ItemID WHERE Users.TIER IN ("gold")',
         "expression 1: Users.TIER cannot be filtered in an ItemID WHERE clause; use Items or "
         "Interactions fields"),
        ('INCLUDE UserID WHERE Items.GENRES IN ("a")',
         "Items.GENRES cannot be filtered in an UserID WHERE clause; use Users or Interactions"),
        ('INCLUDE UserID WHERE Users.TIER IN ("gold") IF CurrentUser.AGE > 3',
         "IF needs a current user, and UserID filters have none"),
        ('INCLUDE ItemID WHERE Items.PRICE > 1 | INCLUDE UserID WHERE Users.AGE > 1',
         "all expressions must filter ItemID, or all UserID, not both"),
        ("INCLUDE ItemID WHERE Items.GENRES < 3",
         "Items.GENRES <: comparisons need a numerical or timestamp field, and Items.GENRES is "
         "categorical"),
        ('INCLUDE ItemID WHERE Items.PRICE IN ("cheap")',
         'Items.PRICE is number: expected a number, got "cheap"'),
        ("INCLUDE ItemID WHERE Items.GENRES IN (1999)",
         'Items.GENRES is categorical: expected "text", got 1999'),
        ('INCLUDE ItemID WHERE Items.RELEASED > "last week"',
         'Items.RELEASED is timestamp: expected epoch seconds or a date, got "last week"'),
        ("INCLUDE ItemID WHERE Items.PRICE > 2024-01-01",
         "Items.PRICE is number: expected a number, got 2024-01-01T00:00:00Z"),
        ("INCLUDE ItemID WHERE Items.PRICE < (1, 2)", "Items.PRICE < compares with one value"),
        ("EXCLUDE ItemID WHERE Items.GENRES NOT IN ($G)",
         "Items.GENRES NOT IN ($G): parameters cannot be used with NOT IN"),
        ("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.GENRES",
         "Items.PRICE is number but CurrentItem.GENRES is categorical"),
        ("INCLUDE UserID WHERE Users.TIER IN CurrentItem.GENRES",
         "CurrentItem fields cannot be used in UserID filters"),
    ],
)  # fmt: skip
def test_bad_expressions_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(parse(text), SCHEMAS)
    assert message in caught.value.message


def test_at_most_ten_distinct_fields() -> None:
    many = DatasetSchema.build("items", {f"F{i}": "categorical" for i in range(11)})
    schemas = Schemas(items=many)
    ten = " OR ".join(f'Items.F{i} IN ("x")' for i in range(10))
    validate(parse(f"INCLUDE ItemID WHERE {ten}"), schemas)
    eleven = " OR ".join(f'Items.F{i} IN ("x")' for i in range(11))
    with pytest.raises(InvalidInput, match="11 distinct fields, at most 10"):
        validate(parse(f"INCLUDE ItemID WHERE {eleven}"), schemas)


def test_default_schemas_know_only_reserved_fields() -> None:
    validate(parse("INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > 5"), Schemas())
    message = r"Items\.GENRES: unknown field; items fields are ITEM_ID, CREATION_TIMESTAMP \("
    with pytest.raises(InvalidInput, match=message):
        validate(parse('INCLUDE ItemID WHERE Items.GENRES IN ("a")'), Schemas())
