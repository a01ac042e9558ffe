"""Compiled masks agree with the slow reference evaluator on generated catalogs (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tastebud.errors import InvalidInput
from tastebud.filters.syntax import (
    And,
    Condition,
    Expression,
    Field,
    Filter,
    Number,
    Operator,
    Or,
    Param,
    Predicate,
    String,
    parameters,
)
from tests.filters.reference import World
from tests.filters.world import compiled, expected, passed

ITEM_TYPES = {"GENRES": "categorical", "COLOR": "string", "PRICE": "numerical",
              "CREATION_TIMESTAMP": "timestamp"}  # fmt: skip
USER_TYPES = {"TIER": "categorical", "AGE": "numerical"}
WORDS = ["a", "b", "c"]
EVENT_TYPES = ["click", "Click", "view"]
MEMBERSHIP: list[Operator] = ["IN", "NOT IN", "=", "!="]
ANY_OPERATOR: list[Operator] = ["IN", "NOT IN", "=", "!=", "<", "<=", ">", ">="]

small = st.integers(0, 4)
joined_words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=2, unique=True).map("|".join)
maybe_words = st.one_of(st.none(), joined_words)


@st.composite
def items(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    count = draw(st.integers(1, 6))
    rows = {}
    for i in range(count):
        rows[f"i{i}"] = {
            "ITEM_ID": f"i{i}", "GENRES": draw(maybe_words),
            "COLOR": draw(st.one_of(st.none(), st.sampled_from(WORDS))),
            "PRICE": draw(st.one_of(st.none(), small.map(float))),
            "CREATION_TIMESTAMP": draw(st.one_of(st.none(), small)),
        }  # fmt: skip
    return rows


def string_values(param: str) -> st.SearchStrategy[tuple[Any, ...]]:
    literals = st.lists(st.sampled_from(WORDS).map(String), min_size=1, max_size=2).map(tuple)
    return st.one_of(literals, st.just((Param(param),)))


def number_values(param: str) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.one_of(small.map(lambda n: (Number(n),)), st.just((Param(param),)))


@st.composite
def item_condition(draw: st.DrawFn) -> Condition:
    name = draw(st.sampled_from(list(ITEM_TYPES)))
    if name in ("GENRES", "COLOR"):
        operator = draw(st.sampled_from(MEMBERSHIP))
        operand = draw(st.one_of(
            string_values("S1" if name == "GENRES" else "S2"),
            st.just(Field("CurrentItem", draw(st.sampled_from(["GENRES", "COLOR"])))),
            st.just(Field("CurrentUser", "TIER")),
        ))  # fmt: skip
    else:
        operator = draw(st.sampled_from(ANY_OPERATOR))
        operand = draw(st.one_of(
            number_values("N1"), st.just(Field("CurrentItem", "PRICE")),
            st.just(Field("CurrentUser", "AGE")),
        ))  # fmt: skip
    if operator == "NOT IN" and isinstance(operand, tuple) and isinstance(operand[0], Param):
        operator = "IN"  # parameters are not allowed with NOT IN
    return Condition(Field("Items", name), operator, operand)


@st.composite
def event_condition(draw: st.DrawFn) -> Condition:
    name = draw(st.sampled_from(["EVENT_TYPE", "EVENT_VALUE", "TIMESTAMP"]))
    if name == "EVENT_TYPE":
        words = st.sampled_from([*EVENT_TYPES, "*", "CLICK"]).map(String)
        operand = draw(st.one_of(st.lists(words, min_size=1, max_size=2).map(tuple),
                                 st.just((Param("E"),))))  # fmt: skip
        choices: list[Operator] = ["IN", "="] if operand == (Param("E"),) else MEMBERSHIP
        operator = draw(st.sampled_from(choices))
    else:
        operator = draw(st.sampled_from(ANY_OPERATOR))
        operand = draw(number_values("N2"))
        if operator == "NOT IN" and isinstance(operand[0], Param):
            operator = "IN"
    return Condition(Field("Interactions", name), operator, operand)


def predicate(leaf: st.SearchStrategy[Condition]) -> st.SearchStrategy[Predicate]:
    pair = st.lists(leaf, min_size=2, max_size=2).map(tuple)
    return st.one_of(
        leaf,
        st.builds(And, pair),
        st.builds(Or, pair),
        st.builds(lambda a, b: And((Or(a), b)), pair, leaf),
    )


@st.composite
def user_condition(draw: st.DrawFn) -> Condition:
    if draw(st.booleans()):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=2))
        operator = draw(st.sampled_from(MEMBERSHIP))
        return Condition(Field("CurrentUser", "TIER"), operator, tuple(String(w) for w in words))
    operator, operand = draw(st.sampled_from(ANY_OPERATOR)), draw(number_values("N3"))
    if operator == "NOT IN" and isinstance(operand[0], Param):
        operator = "IN"
    return Condition(Field("CurrentUser", "AGE"), operator, operand)


@st.composite
def expression(draw: st.DrawFn) -> Expression:
    on_items = draw(st.booleans())
    where = draw(predicate(item_condition() if on_items else event_condition()))
    when = tuple(draw(st.lists(user_condition(), max_size=2)))
    return Expression(draw(st.sampled_from(["INCLUDE", "EXCLUDE"])), "ItemID", where, when)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, list[str]]:
    rows = draw(items())
    ids = list(rows)
    events = [
        {"ITEM_ID": draw(st.sampled_from(ids)),
         "EVENT_TYPE": draw(st.one_of(st.none(), st.sampled_from(EVENT_TYPES))),
         "EVENT_VALUE": draw(st.one_of(st.none(), small.map(float))), "TIMESTAMP": draw(small)}
        for _ in range(draw(st.integers(0, 5)))
    ]  # fmt: skip
    user = draw(st.one_of(st.none(), st.fixed_dictionaries(
        {}, optional={"TIER": joined_words, "AGE": small.map(float)})))  # fmt: skip
    values: dict[str, list[str]] = {}
    for name, choices in [("S1", WORDS), ("S2", WORDS), ("E", EVENT_TYPES),
                          ("N1", ["0", "2", "4"]), ("N2", ["1", "3"]), ("N3", ["2"])]:  # fmt: skip
        if draw(st.integers(0, 9)) > 0:  # mostly given: a missing one fails INCLUDEs
            many = name.startswith(("S", "E"))
            values[name] = draw(st.lists(st.sampled_from(choices), min_size=1,
                                         max_size=2 if many else 1))  # fmt: skip
    world = World(
        items=rows, item_types=ITEM_TYPES, user_types=USER_TYPES, events=events, user=user,
        current_item=draw(st.sampled_from([*ids, "ghost"])), values=values,
    )  # fmt: skip
    version = ids[: draw(st.integers(0, len(ids)))]  # the rest arrived after training
    return world, version


def outcome(run: Any) -> Any:
    try:
        return run()
    except InvalidInput:
        return "InvalidInput"


@settings(max_examples=400, deadline=None)
@given(st.lists(expression(), min_size=1, max_size=3), worlds())
def test_compiled_masks_match_the_reference(
    expressions: list[Expression], generated: tuple[World, list[str]]
) -> None:
    world, version = generated
    tree = Filter(tuple(expressions))
    used = parameters(tree)
    world.values = {k: v for k, v in world.values.items() if k in used}
    candidates = [*world.items, "ghost"]
    filter_ = compiled(tree, world, version_items=version)
    got = outcome(lambda: passed(filter_, world, candidates))
    assert got == outcome(lambda: expected(tree, world, candidates))
    event("error" if got == "InvalidInput" else f"{len(got)} of {len(candidates)} pass")
    assert outcome(lambda: passed(filter_, world, candidates)) == got  # cached answer: the same


@st.composite
def user_filter_condition(draw: st.DrawFn) -> Condition:
    if draw(st.booleans()):
        return draw(event_condition())
    if draw(st.booleans()):
        operator = draw(st.sampled_from(MEMBERSHIP))
        operand = draw(string_values("S1"))
        if operator == "NOT IN" and isinstance(operand[0], Param):
            operator = "IN"
        return Condition(Field("Users", "TIER"), operator, operand)
    operator, operand = draw(st.sampled_from(ANY_OPERATOR)), draw(number_values("N1"))
    if operator == "NOT IN" and isinstance(operand[0], Param):
        operator = "IN"
    return Condition(Field("Users", "AGE"), operator, operand)


@st.composite
def user_expression(draw: st.DrawFn) -> Expression:
    first = draw(user_filter_condition())
    same = st.one_of(user_filter_condition()).filter(
        lambda c: (c.field.dataset == "Interactions") == (first.field.dataset == "Interactions")
    )
    where = draw(st.one_of(st.just(first), st.builds(
        lambda kind, other: kind((first, other)), st.sampled_from([And, Or]), same)))  # fmt: skip
    return Expression(draw(st.sampled_from(["INCLUDE", "EXCLUDE"])), "UserID", where)


@st.composite
def user_worlds(draw: st.DrawFn) -> tuple[World, list[str]]:
    users = {
        f"u{u}": {"USER_ID": f"u{u}", "TIER": draw(maybe_words),
                  "AGE": draw(st.one_of(st.none(), small.map(float)))}
        for u in range(draw(st.integers(1, 6)))
    }  # fmt: skip
    ids = list(users)
    group_events = [
        {"USER_ID": draw(st.sampled_from(ids)),
         "EVENT_TYPE": draw(st.one_of(st.none(), st.sampled_from(EVENT_TYPES))),
         "EVENT_VALUE": draw(st.one_of(st.none(), small.map(float))), "TIMESTAMP": draw(small)}
        for _ in range(draw(st.integers(0, 8)))
    ]  # fmt: skip
    values = {name: draw(st.lists(st.sampled_from(choices), min_size=1, max_size=max_size))
              for name, choices, max_size in [("S1", WORDS, 2), ("E", EVENT_TYPES, 2),
                                              ("N1", ["0", "2", "4"], 1), ("N2", ["1", "3"], 1)]
              if draw(st.integers(0, 9)) > 0}  # fmt: skip
    world = World(items={}, item_types=ITEM_TYPES, users=users, user_types=USER_TYPES,
                  group_events=group_events, values=values)  # fmt: skip
    return world, ids[: draw(st.integers(0, len(ids)))]


@settings(max_examples=200, deadline=None)
@given(st.lists(user_expression(), min_size=1, max_size=3), user_worlds())
def test_compiled_user_masks_match_the_reference(
    expressions: list[Expression], generated: tuple[World, list[str]]
) -> None:
    world, version = generated
    tree = Filter(tuple(expressions))
    used = parameters(tree)
    world.values = {k: v for k, v in world.values.items() if k in used}
    candidates = [*world.users, "ghost"]
    filter_ = compiled(tree, world, version_items=[], version_users=version)
    got = outcome(lambda: passed(filter_, world, candidates))
    assert got == outcome(lambda: expected(tree, world, candidates))
