"""Experiment definitions: bad arms, weights, names and windows are refused with their name."""

from __future__ import annotations

import pytest

from tastebud.errors import InvalidInput
from tastebud.experiments.spec import ExperimentSpec, parse_arm_option, parse_arms, parse_window


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ({"control": ("a", 100)}, "at least 2 arms"),
        ({"control": ("a", 50), "b": ("b", 40)}, "sum to 100, got 90"),
        ({"control": ("a", 110), "b": ("b", -10)}, "arms.b.weight: expected a positive"),
        ({"control": ("a", 50), "b": ("b", 0)}, "arms.b.weight"),
        ({"control": ("a", 50.005), "b": ("b", 49.995)}, "steps of 0.01"),
        ({"control": ("a", 50), "bad name": ("b", 50)}, "arm name 'bad name'"),
        ({"control": ("a", 50), "b": ("a", 50)}, "its own campaign"),
    ],
)
def test_bad_arms_are_named(arms: dict[str, tuple[str, float]], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_arms(arms)


def test_control_is_the_arm_so_named_else_the_first() -> None:
    named = ExperimentSpec(arms=parse_arms({"b": ("x", 50), "control": ("y", 50)}))
    assert named.control.name == "control"
    first = ExperimentSpec(arms=parse_arms({"rules": ("x", 10), "ranker": ("y", 90)}))
    assert first.control.name == "rules"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86_400), ("30m", 1_800), ("1h30m", 5_400), ("7d", 604_800), ("90", 90), (60, 60)],
)
def test_windows(text: str | int, seconds: int) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["1 day", "h", "-1h", "0s", "91d", "1.5h"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(InvalidInput, match="attribution_window"):
        parse_window(text)


def test_arm_option() -> None:
    assert parse_arm_option("control=home-rules:50") == ("control", ("home-rules", 50.0))
    assert parse_arm_option("t=ns:campaign:12.5") == ("t", ("ns:campaign", 12.5))
    for bad in ("control", "control=home", "control=home:x", "=home:50"):
        with pytest.raises(InvalidInput, match="NAME=CAMPAIGN:WEIGHT"):
            parse_arm_option(bad)
