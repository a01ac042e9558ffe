"""Arm assignment: the documented hash, stable per user, independent across experiments, and
splitting users in the configured proportions."""

from __future__ import annotations

import hashlib

from tastebud.experiments.assignment import arm_index, bucket
from tastebud.experiments.spec import ExperimentSpec, parse_arms


def reference_bucket(experiment: str, user_id: str) -> int:
    """docs/experiments.md's snippet, written out again: other systems must get the same."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def spec(**weights: float) -> ExperimentSpec:
    arms = {name: (f"c-{name}", weight) for name, weight in weights.items()}
    return ExperimentSpec(arms=parse_arms(arms))


def test_bucket_is_the_documented_hash() -> None:
    for user in ("u1", "user-42", "ü", ""):
        assert bucket("ranker-vs-rules", user) == reference_bucket("ranker-vs-rules", user)
    # Fixed values (docs/experiments.md quotes them), so a change of the hash fails here.
    assert (bucket("ranker-vs-rules", "u1"), bucket("ranker-vs-rules", "u2")) == (4598, 6725)
    assert [bucket("exp", f"u{i}") for i in range(3)] == [
        reference_bucket("exp", f"u{i}") for i in range(3)
    ]


def test_same_user_same_arm_and_experiments_independent() -> None:
    bounds = spec(control=50, treatment=50).bounds
    first = [arm_index("a", f"u{i}", bounds) for i in range(2_000)]
    assert first == [arm_index("a", f"u{i}", bounds) for i in range(2_000)]
    other = [arm_index("b", f"u{i}", bounds) for i in range(2_000)]
    agreement = sum(x == y for x, y in zip(first, other, strict=True)) / len(first)
    assert 0.45 < agreement < 0.55  # independent halves agree about half the time


def test_split_follows_the_weights() -> None:
    three = spec(control=20, b=30, c=50)
    assert three.bounds == [2_000, 5_000, 10_000]
    users = 40_000
    counts = [0, 0, 0]
    for i in range(users):
        counts[arm_index("split", f"user-{i}", three.bounds)] += 1
    for count, weight in zip(counts, (0.2, 0.3, 0.5), strict=True):
        assert abs(count / users - weight) < 0.01, counts


def test_fractional_weights_cover_every_bucket() -> None:
    thirds = spec(a=33.33, b=33.33, c=33.34)
    assert thirds.bounds == [3_333, 6_666, 10_000]
    assert {arm_index("t", f"u{i}", thirds.bounds) for i in range(3_000)} == {0, 1, 2}
