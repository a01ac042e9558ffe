"""Rendering a syntax tree and parsing the text gives the same tree back (hypothesis)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tastebud.filters import MAX_EXPRESSION_LENGTH, MAX_PARAMETERS, parameters, parse, render
from tastebud.filters.syntax import (
    DATASETS,
    OPERATORS,
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
    Value,
)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
values: st.SearchStrategy[Value] = st.one_of(
    st.builds(String, st.text(max_size=12)),
    st.builds(Number, st.integers(-(10**15), 10**15)),
    st.builds(Number, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(Timestamp, st.integers(0, 4_102_444_800)),
    st.builds(Param, st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)),
)
current_fields = st.builds(Field, st.sampled_from(["CurrentItem", "CurrentUser"]), names)
operands = st.one_of(st.tuples(values), st.lists(values, min_size=1, max_size=4).map(tuple),
                     current_fields)  # fmt: skip


def conditions_on(datasets: list[str]) -> st.SearchStrategy[Condition]:
    fields = st.builds(Field, st.sampled_from(datasets), names)
    return st.builds(Condition, fields, st.sampled_from(OPERATORS), operands)


def _join(kind: type[And] | type[Or], terms: list[Predicate]) -> Predicate:
    """A normalized node: no And directly in an And, no Or in an Or (as the parser builds)."""
    flat: list[Predicate] = []
    for term in terms:
        flat.extend(term.terms if isinstance(term, kind) else (term,))
    return kind(tuple(flat))


predicates: st.SearchStrategy[Predicate] = st.recursive(
    conditions_on(list(DATASETS)),
    lambda inner: st.builds(
        _join, st.sampled_from([And, Or]), st.lists(inner, min_size=2, max_size=3)
    ),
    max_leaves=6,
)
expressions = st.builds(
    Expression,
    st.sampled_from(["INCLUDE", "EXCLUDE"]),
    st.sampled_from(["ItemID", "UserID"]),
    predicates,
    st.lists(conditions_on(["CurrentUser"]), max_size=3).map(tuple),
)
filters = st.builds(Filter, st.lists(expressions, min_size=1, max_size=3).map(tuple))


@settings(max_examples=300, deadline=None)
@given(filters)
def test_render_then_parse_gives_the_same_tree(tree: Filter) -> None:
    text = render(tree)
    assume(len(text) <= MAX_EXPRESSION_LENGTH and len(parameters(tree)) <= MAX_PARAMETERS)
    assert parse(text) == tree
    assert render(parse(text)) == text
