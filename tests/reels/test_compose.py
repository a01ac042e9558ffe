"""Planning: the cadence orders the shots, no clip twice, the exact length, and screen time
non-increasing in rank (a property over many random catalogues)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.errors import InvalidInput
from tastebud.reels import Catalogue, Clip, Plan, plan_reel
from tastebud.reels.compose import LETTERS, water_fill


def catalogue(lengths: dict[str, list[int]]) -> Catalogue:
    """Clips of the given frame lengths per title, each from its own source at frame 10."""
    return Catalogue(Fraction(25), tuple(
        Clip(title, number, f"/{title}-{number}.mp4", 10, 10 + length)
        for title, clip_lengths in lengths.items() for number, length in enumerate(clip_lengths)
    ))  # fmt: skip


def test_the_cadence_orders_the_shots_and_recurrences_take_new_clips() -> None:
    clips = catalogue({t: [100, 100, 100] for t in "pqrstu"})
    plan = plan_reel(["p", "q", "r", "s", "t", "u"], clips, frames=750, cadence="A B C A D B E")
    assert "".join(s.letter for s in plan.shots) == "ABCADBEA"
    assert [(s.clip.title, s.clip.clip) for s in plan.shots if s.letter == "A"] == [
        ("p", 0), ("p", 1), ("p", 2)]  # fmt: skip
    assert plan.frames == 750
    assert plan.screen_time() == {"p": 282, "q": 188, "r": 94, "s": 93, "t": 93}


def test_titles_follow_the_ranking_and_titles_without_clips_are_passed_over() -> None:
    clips = catalogue({"x": [50, 50], "y": [50, 50]})
    plan = plan_reel(["nothing", "y", "x"], clips, frames=150, cadence="AB")
    assert plan.titles == ("y", "x") and [s.clip.title for s in plan.shots] == ["y", "x", "y"]


def test_a_short_better_title_caps_the_others_and_the_error_says_which() -> None:
    clips = catalogue({"top": [25], "next": [500, 500]})
    with pytest.raises(InvalidInput) as error:
        plan_reel(["top", "next"], clips, frames=250, cadence="AB")
    assert "can fill 2 s of the 10 s asked" in error.value.message
    assert "A='top' 1 s, B='next' 40 s" in error.value.message


@pytest.mark.parametrize(
    ("cadence", "message"),
    [("AB1", r"'1' \(letter 3\) is not a letter"), ("ABD", "letter D is the user's title number"
     " 4 with clips, and only 3"), ("", "give 1 to 260 letters"), ("A" * 261, "1 to 260")],
)  # fmt: skip
def test_bad_cadences_are_named(cadence: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        plan_reel(["a", "b", "c"], catalogue({title: [100] for title in "abc"}), frames=50,
                  cadence=cadence)  # fmt: skip


def test_the_default_cadence_keeps_the_letters_the_titles_reach() -> None:
    plan = plan_reel(["a", "b"], catalogue({"a": [30] * 3, "b": [30] * 3}), frames=120)
    assert plan.cadence == "ABAB"


def test_no_ranked_title_with_clips_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="none of the user's ranked titles has clips"):
        plan_reel(["zz"], catalogue({"a": [10]}), frames=5)


def test_water_fill_gives_leftovers_in_order_within_caps() -> None:
    assert water_fill(10, [100, 100, 100], [1, 1, 1]) == [4, 3, 3]
    assert water_fill(10, [2, 100, 100], [1, 1, 1]) == [2, 4, 4]
    assert water_fill(9, [9, 6, 6], [2, 1, 1]) == [5, 2, 2]


def check_invariants(plan: Plan, frames: int, ranking: list[str]) -> None:
    assert plan.frames == frames  # exactly the length asked
    keys = [(s.clip.title, s.clip.clip) for s in plan.shots]
    assert len(keys) == len(set(keys))  # no clip twice
    assert all(0 < s.frames <= s.clip.frames and s.source_in == s.clip.start for s in plan.shots)
    # Rank weighting: screen time non-increasing in rank among the titles used.
    times = list(plan.screen_time().values())
    assert times == sorted(times, reverse=True)
    ranks = [ranking.index(title) for title in plan.screen_time()]
    assert ranks == sorted(ranks)
    # The shots follow the cadence loop: each shot's letter is the next one in the loop that
    # still has clips, so the letters read as a subsequence of the cadence repeated.
    loop = iter(plan.cadence * (len(plan.shots) + 1))
    assert all(shot.letter in loop for shot in plan.shots)
    for shot in plan.shots:
        assert shot.clip.title == plan.titles[LETTERS.index(shot.letter)]


@settings(max_examples=400, deadline=None)
@given(
    lengths=st.lists(st.lists(st.integers(1, 120), min_size=1, max_size=5), min_size=1,
                     max_size=8),
    cadence=st.text(alphabet="ABCDEFGH", min_size=1, max_size=12),
    frames=st.integers(1, 1500),
    order=st.randoms(use_true_random=False),
)  # fmt: skip
def test_rank_weighting_holds_on_random_catalogues(
    lengths: list[list[int]], cadence: str, frames: int, order: object
) -> None:
    titles = [f"t{i}" for i in range(len(lengths))]
    ranking = titles[:]
    order.shuffle(ranking)  # type: ignore[attr-defined]
    clips = catalogue(dict(zip(titles, lengths, strict=True)))
    cadence = "".join(c for c in cadence if LETTERS.index(c) < len(titles)) or "A"
    try:
        plan = plan_reel(ranking, clips, frames=frames, cadence=cadence)
    except InvalidInput as error:
        assert "can fill" in error.message  # the only refusal: not enough footage
        return
    check_invariants(plan, frames, ranking)
