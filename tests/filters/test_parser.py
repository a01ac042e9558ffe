"""The parser on the reference's documented examples, on our own grammar, and on bad text."""

from __future__ import annotations

import pytest

from tastebud.errors import FilterSyntaxError, InvalidInput
from tastebud.filters import parameters, parse, render
from tastebud.filters.syntax import (
    And,
    Condition,
    Expression,
    Field,
    Filter,
    Number,
    Or,
    Param,
    String,
    Timestamp,
)

# The reference service's documented examples ("Filter expression examples": item
# recommendations, user segments, combining expressions; the CreateFilter API page), plus this
# project's design examples. Action-recommendation examples appear with ItemID/Items instead of
# ActionID/Actions, which tastebud does not have.
DOCUMENTED = [
    "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)",
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
    "EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)",
    "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
    'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
    "INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($MEMBERSHIP)",
    "EXCLUDE UserID WHERE Users.AGE < $AGE",
    'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("click", "rating")',
    "EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)",
    "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | "
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("favorite")',
    "INCLUDE ItemID WHERE Items.VALUE > ($VALUE)",
    'INCLUDE ItemID WHERE Items.MEMBERSHIP_LEVEL IN ("Premium") '
    "IF CurrentUser.MEMBERSHIP = $PREMIUM",
    "EXCLUDE ItemID WHERE Items.VALUE < ($VALUE) IF CurrentUser.MEMBERSHIP = $PREMIUM",
    'EXCLUDE itemId WHERE INTERACTIONS.event_type in ("EVENT_TYPE")',
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watched", "purchased")',
    "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | EXCLUDE ItemID WHERE Items.PRICE > 100",
    'INCLUDE ItemID WHERE Items.ACCESS_TYPE IN ("paid") '
    'IF CurrentUser.TIER IN ("gold", "platinum")',
    "EXCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $CUTOFF",
]


@pytest.mark.parametrize("text", DOCUMENTED)
def test_documented_examples_parse_and_render_back(text: str) -> None:
    tree = parse(text)
    assert parse(render(tree)) == tree
    assert render(parse(render(tree))) == render(tree)


def test_trees_of_documented_examples() -> None:
    assert parse(DOCUMENTED[1]) == Filter((Expression(
        "EXCLUDE", "ItemID",
        Condition(Field("Interactions", "EVENT_TYPE"), "IN", (String("click"), String("stream"))),
    ),))  # fmt: skip
    assert parse(DOCUMENTED[4]).expressions[0].where == And((
        Condition(Field("Items", "PRICE"), "<", Field("CurrentItem", "PRICE")),
        Condition(Field("Items", "GENRE"), "IN", Field("CurrentItem", "GENRE")),
    ))  # fmt: skip
    gated = parse(DOCUMENTED[12]).expressions[0]
    assert gated.when == (Condition(Field("CurrentUser", "MEMBERSHIP"), "=", (Param("PREMIUM"),)),)
    assert parse(DOCUMENTED[11]) == parse("INCLUDE ItemID WHERE Items.VALUE > $VALUE")
    segment = parse(DOCUMENTED[7]).expressions[0]
    assert (segment.action, segment.target) == ("EXCLUDE", "UserID")
    chained = parse(DOCUMENTED[10])
    assert [e.action for e in chained.expressions] == ["INCLUDE", "INCLUDE"]
    assert [parameters(e) for e in chained.expressions] == [["CATEGORY"], []]


def test_keywords_and_datasets_in_any_case_field_names_as_written() -> None:
    tree = parse('exclude itemid where interactions.event_type not in ("a")')
    condition = tree.expressions[0].where
    assert condition == Condition(Field("Interactions", "event_type"), "NOT IN", (String("a"),))
    assert render(tree) == 'EXCLUDE ItemID WHERE Interactions.event_type NOT IN ("a")'


def test_precedence_groups_and_flattening() -> None:
    a, b, c = (Condition(Field("Items", n), "=", (Number(1),)) for n in "ABC")
    assert parse("INCLUDE ItemID WHERE Items.A = 1 OR Items.B = 1 AND Items.C = 1").expressions[
        0
    ].where == Or((a, And((b, c))))
    grouped = parse("INCLUDE ItemID WHERE (Items.A = 1 OR Items.B = 1) AND Items.C = 1")
    assert grouped.expressions[0].where == And((Or((a, b)), c))
    assert render(grouped) == "INCLUDE ItemID WHERE (Items.A = 1 OR Items.B = 1) AND Items.C = 1"
    flat = parse("INCLUDE ItemID WHERE (Items.A = 1 OR Items.B = 1) OR Items.C = 1")
    assert flat.expressions[0].where == Or((a, b, c))


def test_literals_numbers_strings_and_timestamps() -> None:
    tree = parse(
        "INCLUDE ItemID WHERE Items.P IN (-3, 2.5, 1e3, 'single', \"dou'ble\", 2024-01-31, "
        "2024-01-31T12:30:00Z, 2024-01-31T12:30:00+02:00)"
    )
    values = tree.expressions[0].where.operand  # type: ignore[union-attr]
    assert values == (
        Number(-3), Number(2.5), Number(1000.0), String("single"), String("dou'ble"),
        Timestamp(1706659200), Timestamp(1706704200), Timestamp(1706697000),
    )  # fmt: skip
    assert isinstance(values[0], Number) and isinstance(values[0].value, int)
    assert isinstance(values[2], Number) and isinstance(values[2].value, float)


def test_quoted_strings_escape_quotes_and_backslashes() -> None:
    tree = parse(r'INCLUDE ItemID WHERE Items.T IN ("a\"b", "c\\d", ' + "'e\"f')")
    values = tree.expressions[0].where.operand  # type: ignore[union-attr]
    assert values == (String('a"b'), String("c\\d"), String('e"f'))
    assert parse(render(tree)) == tree


def test_numbers_and_timestamps_render_exactly() -> None:
    tree = parse("INCLUDE ItemID WHERE Items.T > 2024-01-31 OR Items.P >= 0.1")
    assert render(tree) == ("INCLUDE ItemID WHERE Items.T > 2024-01-31T00:00:00Z OR Items.P >= 0.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('INCLUDE ItemID WHERE Items.GENRES IN ("comedy)',
         'column 39: unbalanced quotes: the string opened here has no closing "'),
        ("INCLUDE ItemID WHERE Items.GENRES IN ('comedy\")",
         "column 39: unbalanced quotes: the string opened here has no closing '"),
        ('INCLUDE ItemID Items.GENRES IN ("a")', "column 16: expected WHERE, got 'Items'"),
        ('INCLUDE WHERE Items.GENRES IN ("a")',
         "column 9: expected ItemID or UserID, got 'WHERE'"),
        ('INCLUDE ActionID WHERE Actions.VALUE > 1',
         "column 9: expected ItemID or UserID, got 'ActionID'"),
        ('KEEP ItemID WHERE Items.A IN ("a")', "column 1: expected INCLUDE or EXCLUDE, got 'KEEP'"),
        ("", "column 1: expected INCLUDE or EXCLUDE, got the end of the expression"),
        ('INCLUDE ItemID WHERE Things.A IN ("a")',
         "column 22: unknown dataset 'Things'; expected Items, Users, Interactions, CurrentUser "
         "or CurrentItem"),
        ('INCLUDE ItemID WHERE Items IN ("a")', "column 28: expected '.' and a field name"),
        ('INCLUDE ItemID WHERE Items.A LIKE ("a")',
         "column 30: expected an operator: IN, NOT IN, =, !=, <, <=, > or >=, got 'LIKE'"),
        ('INCLUDE ItemID WHERE Items.A NOT ("a")', "column 34: expected IN after NOT, got '('"),
        ("INCLUDE ItemID WHERE Items.A IN ()", "column 34: expected a value"),
        ('INCLUDE ItemID WHERE Items.A IN ("a" "b")',
         "column 38: expected ',' or ')' to close the value list, got the string 'b'"),
        ('INCLUDE ItemID WHERE Items.A IN ("a") AND', "column 42: expected a field such as"),
        ('INCLUDE ItemID WHERE (Items.A IN ("a")',
         "column 39: expected ')' to close the group, got the end"),
        ('INCLUDE ItemID WHERE Items.A IN ("a") Items.B', "column 39: expected AND, OR, IF, '|'"),
        ('INCLUDE ItemID WHERE Items.A IN ("a") |', "column 40: expected INCLUDE or EXCLUDE"),
        ('INCLUDE ItemID WHERE Items.A IN ("a") IF Items.B = 1',
         "column 42: expected a CurrentUser field (IF checks the current user), got 'Items.B'"),
        ('INCLUDE ItemID WHERE Items.A IN ("a") IF CurrentUser.B = 1 OR CurrentUser.C = 2',
         "column 60: expected AND, OR, IF, '|' or the end of the expression, got 'OR'"),
        ("INCLUDE ItemID WHERE Items.A IN Items.B",
         "column 33: expected a value, a $PARAMETER, or a CurrentItem. or CurrentUser. field"),
        ("INCLUDE ItemID WHERE Items.A IN ($)", "column 34: expected a parameter name after $"),
        ("INCLUDE ItemID WHERE Items.A > 2024-13-40", "column 32: '2024-13-40' is not a valid"),
        ("INCLUDE ItemID WHERE Items.A > 12abc", "column 32: expected a keyword, field, value"),
        ("INCLUDE ItemID WHERE Items.A = #", "column 32: expected a keyword, field, value or "
                                            "operator, got '#'"),
    ],
)  # fmt: skip
def test_syntax_errors_name_the_column_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    assert caught.value.message.startswith("filter expression, column")
    assert message in caught.value.message


def test_limits_length_and_parameters() -> None:
    long = 'INCLUDE ItemID WHERE Items.A IN ("' + "x" * 2500 + '")'
    with pytest.raises(InvalidInput, match=r"2536 characters, at most 2500"):
        parse(long)
    many = " OR ".join(f"Items.A IN ($P{i})" for i in range(26))
    with pytest.raises(InvalidInput, match=r"26 parameters \(\$P0, \$P1, .*\), at most 25"):
        parse(f"INCLUDE ItemID WHERE {many}")
    parse("INCLUDE ItemID WHERE " + " OR ".join(f"Items.A IN ($P{i})" for i in range(25)))
    with pytest.raises(FilterSyntaxError, match="longer than 50 characters"):
        parse(f"INCLUDE ItemID WHERE Items.A IN (${'P' * 51})")


def test_parameters_in_order_without_duplicates() -> None:
    tree = parse(
        "INCLUDE ItemID WHERE Items.A IN ($X, $Y) IF CurrentUser.T = $Z | "
        "EXCLUDE ItemID WHERE Items.B IN ($Y)"
    )
    assert parameters(tree) == ["X", "Y", "Z"]
