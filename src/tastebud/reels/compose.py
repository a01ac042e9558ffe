"""Planning a reel: ranked titles, their clips, a cadence and a length in, shots out (pure).

The **cadence** is a string of letters, ``A`` for the best-ranked title that has clips, ``B`` for
the next, …; played in a loop it orders the shots (``ABCADBE`` shows A, B, C, A again, D, …). Each
time a title's letter comes round it shows its next unused clip (clip-number order); a title out
of clips is skipped. The reel takes the shortest run of that loop whose footage can fill the
target length, then sizes the shots:

1. Title budgets. With ``C[r]`` the footage of the r-th ranked title in the run and ``n[r]`` its
   number of shots there, a title may get at most ``E[r] = min(C[1..r])`` frames (never more than
   a better title can have) and a share of ``L * min(n[1..r])``: budgets are
   ``min(E[r], L * min(n[1..r]))`` with the shot length ``L`` the largest whole number of frames
   that does not overshoot, and the frames left over go one title at a time in rank order.
2. Shots. Each title's budget is split over its shots as evenly as their clips allow, the first
   shots taking the odd frames; every shot starts at its clip's first frame.

Both caps are non-increasing in rank and leftovers go to better titles first, so **screen time
is non-increasing in rank** among the titles used, and the shots add up to the target exactly.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate

from tastebud.errors import InvalidInput
from tastebud.reels.catalogue import Catalogue, Clip

DEFAULT_CADENCE = "ABCADBE"
MAX_CADENCE = 260
LETTERS = string.ascii_uppercase


@dataclass(frozen=True, slots=True)
class Shot:
    """One cut of the reel: ``frames`` of ``clip`` from its first frame, for ranked title
    number ``rank`` (1 = best with clips), shown by cadence ``letter``."""

    clip: Clip
    rank: int
    letter: str
    frames: int

    @property
    def source_in(self) -> int:
        return self.clip.start

    @property
    def source_out(self) -> int:
        return self.clip.start + self.frames


@dataclass(frozen=True, slots=True)
class Plan:
    fps: Fraction
    cadence: str
    titles: tuple[str, ...]  # ranked titles with clips; letter A is titles[0]
    shots: tuple[Shot, ...]

    @property
    def frames(self) -> int:
        return sum(shot.frames for shot in self.shots)

    def screen_time(self) -> dict[str, int]:
        """Frames per title used, best-ranked first."""
        totals = dict.fromkeys(self.titles[: max(s.rank for s in self.shots)], 0)
        for shot in self.shots:
            totals[shot.clip.title] += shot.frames
        return {title: frames for title, frames in totals.items() if frames}


def parse_cadence(text: str | None, titles: int) -> str:
    """The cadence's letters (spaces and commas ignored, any case). Without one, the default
    ``ABCADBE`` keeps the letters the titles reach.

    Raises:
        InvalidInput: a character that is not a letter, or a letter past the ranked titles.
    """
    if text is None:
        return "".join(letter for letter in DEFAULT_CADENCE if LETTERS.index(letter) < titles)
    letters = text.upper().replace(" ", "").replace(",", "")
    if not letters or len(letters) > MAX_CADENCE:
        raise InvalidInput(f"cadence: give 1 to {MAX_CADENCE} letters, e.g. {DEFAULT_CADENCE}")
    for position, letter in enumerate(letters, 1):
        if letter not in LETTERS:
            raise InvalidInput(f"cadence: {letter!r} (letter {position}) is not a letter A-Z")
        if LETTERS.index(letter) >= titles:
            raise InvalidInput(
                f"cadence: letter {letter} is the user's title number "
                f"{LETTERS.index(letter) + 1} with clips, and only {titles} ranked titles "
                "have clips in the catalogue"
            )
    return letters


def plan_reel(
    ranking: Sequence[str], catalogue: Catalogue, *, frames: int, cadence: str | None = None
) -> Plan:
    """The reel for a ranking (best first) filling exactly ``frames`` (see the module doc).

    Raises:
        InvalidInput: no ranked title has clips, a bad cadence, or footage that cannot fill
            ``frames`` under the rank rule (the message says which titles are short).
    """
    if frames < 1:
        raise InvalidInput("seconds: the reel must be at least one frame long")
    clips = catalogue.by_title()
    titles = tuple(title for title in dict.fromkeys(ranking) if title in clips)
    if not titles:
        raise InvalidInput("none of the user's ranked titles has clips in the catalogue")
    letters = parse_cadence(cadence, len(titles))
    run = _shortest_run(letters, [len(clips[t]) for t in titles],
                        lambda r, i: clips[titles[r]][i].frames, frames)  # fmt: skip
    if run is None:
        raise InvalidInput(_short_message(letters, titles, clips, catalogue.fps, frames))
    chain = sorted({rank for rank, _ in run})  # the titles the run shows, best first
    caps = {r: [clips[titles[r]][i].frames for q, i in run if q == r] for r in chain}
    budgets = water_fill(frames, list(accumulate((sum(caps[r]) for r in chain), min)),
                         list(accumulate((len(caps[r]) for r in chain), min)))  # fmt: skip
    lengths: dict[int, Iterator[int]] = {
        r: iter(water_fill(budget, caps[r], [1] * len(caps[r])))
        for r, budget in zip(chain, budgets, strict=True)
    }
    shots = (Shot(clips[titles[r]][i], r + 1, LETTERS[r], next(lengths[r])) for r, i in run)
    return Plan(catalogue.fps, letters, titles, tuple(s for s in shots if s.frames))


def water_fill(total: int, caps: Sequence[int], weights: Sequence[int]) -> list[int]:
    """Split ``total`` frames: ``min(cap, L * weight)`` each for the largest whole ``L`` that
    fits, then the rest one entry at a time in order (each up to ``min(cap, (L + 1) * weight)``).
    The caller guarantees ``total <= sum(caps)``."""

    def given(length: int) -> list[int]:
        return [min(cap, length * weight) for cap, weight in zip(caps, weights, strict=True)]

    low, high = 0, total  # given(total) already reaches min(total, sum(caps)) = total
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if sum(given(middle)) <= total else (low, middle - 1)
    shares, more = given(low), given(low + 1)
    left = total - sum(shares)
    for index, (share, room) in enumerate(zip(shares, more, strict=True)):
        extra = min(left, room - share)
        shares[index] += extra
        left -= extra
    return shares


def _shortest_run(
    letters: str, clip_counts: Sequence[int], clip_frames: Callable[[int, int], int], frames: int
) -> list[tuple[int, int]] | None:
    """The shortest run of the cadence loop, as (title rank - 1, clip index) pairs, whose
    footage can fill ``frames`` (None: not even all the clips can)."""
    ranks = sorted({LETTERS.index(letter) for letter in letters})
    footage = dict.fromkeys(ranks, 0)
    used = dict.fromkeys(ranks, 0)
    run: list[tuple[int, int]] = []
    while True:
        progressed = False
        for letter in letters:
            rank = LETTERS.index(letter)
            if used[rank] == clip_counts[rank]:
                continue  # this title has shown all its clips
            run.append((rank, used[rank]))
            footage[rank] += clip_frames(rank, used[rank])
            used[rank] += 1
            progressed = True
            if sum(accumulate((footage[r] for r in ranks), min)) >= frames:
                return run
        if not progressed:
            return None


def _short_message(
    letters: str, titles: Sequence[str], clips: dict[str, list[Clip]], fps: Fraction, frames: int
) -> str:
    ranks = sorted({LETTERS.index(letter) for letter in letters})
    footage = [sum(c.frames for c in clips[titles[r]]) for r in ranks]
    reachable = sum(accumulate(footage, min))
    each = ", ".join(f"{LETTERS[r]}={titles[r]!r} {_seconds(f, fps)} s"
                     for r, f in zip(ranks, footage, strict=True))  # fmt: skip
    return (
        f"seconds: the clips can fill {_seconds(reachable, fps)} s of the "
        f"{_seconds(frames, fps)} s asked. Footage of the cadence's titles: {each}; no title may "
        "get more screen time than a better-ranked one, so the shortest of the better titles "
        "caps the rest. Add clips to the short titles, use more letters in the cadence, or ask "
        "for fewer seconds"
    )


def _seconds(frames: int, fps: Fraction) -> str:
    return f"{float(frames / fps):.2f}".rstrip("0").rstrip(".")
