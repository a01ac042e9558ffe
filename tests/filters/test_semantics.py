"""Semantics on a small catalog whose right answers are worked out by hand (and agree with the
reference evaluator)."""

from __future__ import annotations

import pytest

from tastebud.errors import InvalidInput
from tests.filters.reference import World
from tests.filters.world import compiled, expected, passed, top

ITEM_TYPES = {
    "GENRES": "categorical", "PRICE": "numerical", "COLOR": "string", "TIER": "categorical",
    "CREATION_TIMESTAMP": "timestamp",
}  # fmt: skip
ITEMS = {
    "i1": {"GENRES": "comedy|drama", "PRICE": 5.0, "COLOR": "red", "TIER": "gold",
           "CREATION_TIMESTAMP": 100},
    "i2": {"GENRES": "comedy", "PRICE": 15.0, "COLOR": "blue", "TIER": "silver|gold",
           "CREATION_TIMESTAMP": 200},
    "i3": {"GENRES": "horror", "PRICE": 50.0, "TIER": "silver", "CREATION_TIMESTAMP": 300},
    "i4": {},  # an item without metadata
    "i5": {"GENRES": "drama", "PRICE": 150.0, "COLOR": "blue", "CREATION_TIMESTAMP": 400},
}  # fmt: skip
for _id, _row in ITEMS.items():
    _row["ITEM_ID"] = _id
VERSION_ITEMS = ["i1", "i2", "i3", "i4"]  # i5 arrived after training; "ghost" is known nowhere
CANDIDATES = [*ITEMS, "ghost"]
USERS = {"u1": {"TIER": "gold", "AGE": 30.0}, "u2": {"TIER": "silver", "AGE": 15.0}, "u3": {}}
EVENTS = [  # the current user's recent events
    {"ITEM_ID": "i1", "EVENT_TYPE": "Click", "TIMESTAMP": 1000},
    {"ITEM_ID": "i2", "EVENT_TYPE": "watch", "EVENT_VALUE": 0.9, "TIMESTAMP": 2000},
    {"ITEM_ID": "i3", "EVENT_TYPE": "purchase", "EVENT_VALUE": 20.0, "TIMESTAMP": 3000},
    {"ITEM_ID": "i5", "TIMESTAMP": 4000},
]


def world(**changes: object) -> World:
    base = World(
        items=ITEMS, item_types=ITEM_TYPES, users=USERS,
        user_types={"TIER": "categorical", "AGE": "numerical"}, events=EVENTS, user=USERS["u1"],
        current_item="i5",
        group_events=[{"USER_ID": "u1", "EVENT_TYPE": "click"},
                      {"USER_ID": "u2", "EVENT_TYPE": "RATING", "EVENT_VALUE": 4.0},
                      {"USER_ID": "u3", "EVENT_TYPE": "view"}],
    )  # fmt: skip
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def check(text: str, answer: set[str], **changes: object) -> None:
    here = world(**changes)
    got = passed(compiled(text, here, version_items=VERSION_ITEMS), here, CANDIDATES)
    assert got == answer
    assert expected(text, here, CANDIDATES) == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # Interactions: the current user's history, event types in any case, "*" = every type.
        ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
         {"i2", "i3", "i4", "i5", "ghost"}),
        ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("WATCH", "purchase")', {"i2", "i3"}),
        ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', {"i4", "ghost"}),
        ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")', {"i2", "i3"}),
        ("INCLUDE ItemID WHERE Interactions.EVENT_VALUE > 1", {"i3"}),
        ("INCLUDE ItemID WHERE Interactions.TIMESTAMP >= 2000", {"i2", "i3", "i5"}),
        # one event must meet the whole WHERE: the watch has value 0.9
        ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch") AND '
         "Interactions.EVENT_VALUE > 1", set()),
        # Items: a missing field never matches, neither IN nor NOT IN.
        ('INCLUDE ItemID WHERE Items.GENRES IN ("drama")', {"i1", "i5"}),
        ('INCLUDE ItemID WHERE Items.GENRES NOT IN ("comedy")', {"i3", "i5"}),
        ('EXCLUDE ItemID WHERE Items.GENRES NOT IN ("comedy")', {"i1", "i2", "i4", "ghost"}),
        ('INCLUDE ItemID WHERE Items.GENRES != "comedy"', {"i3", "i5"}),
        ("INCLUDE ItemID WHERE Items.PRICE < 20", {"i1", "i2"}),
        ("EXCLUDE ItemID WHERE Items.PRICE > 100", {"i1", "i2", "i3", "i4", "ghost"}),
        ("INCLUDE ItemID WHERE Items.PRICE IN (5, 50)", {"i1", "i3"}),
        ('INCLUDE ItemID WHERE Items.COLOR = "red" OR Items.PRICE >= 50', {"i1", "i3", "i5"}),
        ('INCLUDE ItemID WHERE (Items.COLOR IN ("blue") OR Items.GENRES IN ("horror")) AND '
         "Items.PRICE < 100", {"i2", "i3"}),
        ('INCLUDE ItemID WHERE Items.ITEM_ID IN ("i2", "i5", "ghost")', {"i2", "i5"}),
        ("INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > 1970-01-01T00:03:20Z", {"i3", "i5"}),
        ('INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP >= "1970-01-01T00:03:20Z"',
         {"i2", "i3", "i5"}),
        # chains: (includes OR-ed) minus (excludes OR-ed), in any order
        ('INCLUDE ItemID WHERE Items.GENRES IN ("comedy") | EXCLUDE ItemID WHERE Items.PRICE > 10',
         {"i1"}),
        ('EXCLUDE ItemID WHERE Items.PRICE > 100 | INCLUDE ItemID WHERE Items.GENRES IN ("drama")',
         {"i1"}),
        ('INCLUDE ItemID WHERE Items.GENRES IN ("horror") | '
         'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")', {"i1", "i3"}),
        ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*") | '
         'EXCLUDE ItemID WHERE Items.COLOR IN ("blue") | '
         'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', {"i1"}),
        # CurrentItem (i5: drama, 150) and CurrentUser (u1: gold) as values
        ("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND "
         "Items.GENRES IN CurrentItem.GENRES", {"i1"}),
        ("INCLUDE ItemID WHERE Items.TIER IN CurrentUser.TIER", {"i1", "i2"}),
    ],
)  # fmt: skip
def test_item_filters(text: str, answer: set[str]) -> None:
    check(text, answer)


def test_if_leaves_the_expression_out_when_it_fails() -> None:
    text = 'INCLUDE ItemID WHERE Items.PRICE < 10 IF CurrentUser.TIER IN ("silver")'
    check(text, set(CANDIDATES))  # u1 is gold: no filtering
    check(text, {"i1"}, user=USERS["u2"])
    check(text, set(CANDIDATES), user=None)  # anonymous
    check(text, set(CANDIDATES), user=USERS["u3"])  # no TIER
    gated = (
        "EXCLUDE ItemID WHERE Items.PRICE > 10 IF CurrentUser.AGE < $AGE AND CurrentUser.AGE > 1"
    )
    check(gated, {"i1", "i4", "ghost"}, values={"AGE": ["40"]})
    check(gated, set(CANDIDATES), values={"AGE": ["18"]})


def test_parameters_bind_per_request() -> None:
    text = "INCLUDE ItemID WHERE Items.GENRES IN ($G)"
    check(text, {"i1", "i2"}, values={"G": ["comedy"]})
    check(text, {"i1", "i2", "i3"}, values={"$G": '"comedy","horror"'})  # the reference's form
    check("INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $CUTOFF", {"i1", "i2"},
          values={"CUTOFF": ["1970-01-01T00:04:00Z"]})  # fmt: skip
    check("INCLUDE ItemID WHERE Items.PRICE >= ($P)", {"i3", "i5"}, values={"P": ["50"]})


def test_missing_parameter_values() -> None:
    include = "INCLUDE ItemID WHERE Items.GENRES IN ($G)"
    with pytest.raises(InvalidInput, match=r"no value for \$G; filter 'f' needs values for \$G"):
        passed(compiled(include, world(), version_items=VERSION_ITEMS), world(), CANDIDATES)
    with pytest.raises(InvalidInput, match=r"no value for \$G"):
        expected(include, world(), CANDIDATES)
    # an EXCLUDE expression without its values is left out (as the reference documents)
    check("EXCLUDE ItemID WHERE Items.GENRES IN ($G)", set(CANDIDATES))
    check("EXCLUDE ItemID WHERE Items.GENRES IN ($G)", set(CANDIDATES), values={"G": []})


@pytest.mark.parametrize(
    ("text", "values", "message"),
    [
        ("INCLUDE ItemID WHERE Items.GENRES IN ($G)", {"G": ["a"], "H": ["b"]},
         r"filterValues: \$H is not a parameter of filter 'f' \(it has \$G\)"),
        ("INCLUDE ItemID WHERE Items.PRICE < $P", {"P": ["cheap"]},
         r"filterValues.\$P: expected a number, got 'cheap'"),
        ("INCLUDE ItemID WHERE Items.PRICE < $P", {"P": ["1", "2"]},
         r"Items.PRICE < compares with one value, got 2"),
        ("INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $T", {"T": ["soon"]},
         r"filterValues.\$T: expected epoch seconds or ISO-8601, got 'soon'"),
        ("INCLUDE ItemID WHERE Items.GENRES IN ($G)", {"G": ["x"] * 101},
         r"filterValues.\$G: 101 values, at most 100"),
        ("INCLUDE ItemID WHERE Items.GENRES IN ($G)", {"G": ["x" * 1001]},
         r"a value over 1000 characters"),
        ("INCLUDE ItemID WHERE Items.GENRES IN ($G)", {f"K{i}": ["x"] for i in range(26)},
         r"filterValues: 26 parameters, at most 25"),
    ],
)  # fmt: skip
def test_bad_values_are_named(text: str, values: dict[str, list[str]], message: str) -> None:
    here = world(values=values)
    with pytest.raises(InvalidInput, match=message):
        passed(compiled(text, here, version_items=VERSION_ITEMS), here, CANDIDATES)


def test_current_item_needs_one() -> None:
    text = "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE"
    check(text, set(), current_item="i4")  # the current item has no price
    check(text, set(), current_item="ghost")
    check(text, {"i1", "i2"}, current_item="i3")
    with pytest.raises(InvalidInput, match="uses CurrentItem: only similar-items requests"):
        here = world(current_item=None)
        passed(compiled(text, here, version_items=VERSION_ITEMS), here, CANDIDATES)


@pytest.mark.parametrize(
    ("text", "values", "answer"),
    [
        ("INCLUDE UserID WHERE Users.TIER IN ($T)", {"T": ["gold"]}, {"u1"}),
        ("EXCLUDE UserID WHERE Users.AGE < 18", {}, {"u1", "u3"}),
        ('INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("click", "rating")', {}, {"u1", "u2"}),
        ("EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ($E)", {}, {"u1", "u2", "u3"}),
        ("INCLUDE UserID WHERE Interactions.EVENT_VALUE >= 4 | EXCLUDE UserID WHERE Users.AGE > 20",
         {}, {"u2"}),
    ],
)  # fmt: skip
def test_user_filters(text: str, values: dict[str, list[str]], answer: set[str]) -> None:
    here = world(values=values)
    users = compiled(text, here, version_items=VERSION_ITEMS, version_users=["u1", "u2"])
    assert passed(users, here, ["u1", "u2", "u3"]) == answer
    assert expected(text, here, ["u1", "u2", "u3"]) == answer


def test_results_still_fill_k_when_enough_pass() -> None:
    here = world()
    comedy = compiled('INCLUDE ItemID WHERE Items.GENRES IN ("comedy", "horror")', here,
                      version_items=VERSION_ITEMS)  # fmt: skip
    scores = [0.1, 0.2, 0.3, 0.9]  # the best-scored item (i4) has no genre
    assert top(comedy, here, scores, 2) == [2, 1]  # i3, i2: still two results
    assert top(comedy, here, scores, 10) == [2, 1, 0]  # only three pass
    seen = compiled('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', here,
                    version_items=VERSION_ITEMS)  # fmt: skip
    assert top(seen, here, scores, 3) == [3]


def test_selections_are_cached_by_what_they_depend_on() -> None:
    here = world(values={"G": ["comedy"]})
    text = "INCLUDE ItemID WHERE Items.GENRES IN ($G)"
    genre = compiled(text, here, version_items=VERSION_ITEMS)
    from tests.filters.world import request

    first = genre.select(request(here))
    assert genre.select(request(here)).allowed is first.allowed  # the same shared mask
    assert first.allowed is not None and not first.allowed.flags.writeable
    other = genre.select(request(world(values={"G": ["drama"]})))
    assert other.allowed is not first.allowed
