"""What an experiment is: named arms (each a campaign and a share of traffic), the event type
that counts as an outcome, and how long after an answer an outcome is still its doing."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tastebud.errors import InvalidInput

DEFAULT_WINDOW_SECONDS = 86_400
MAX_WINDOW_SECONDS = 90 * 86_400
CONTROL = "control"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_WINDOW = re.compile(r"(?:\d+[smhd])+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    campaign: str
    weight: float = Field(description="Percent of users, 0.01 steps; the arms sum to 100.")


class ExperimentSpec(BaseModel):
    """Stored as the experiment's body; immutable once created (a changed split would move
    users between arms mid-test)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arms: list[Arm]
    metric: str | None = Field(
        default=None, description="The event type that is an outcome (None: any event)."
    )
    attribution_window: int = DEFAULT_WINDOW_SECONDS

    @property
    def control(self) -> Arm:
        """The arm named ``control``, else the first one: the baseline of every lift."""
        return next((a for a in self.arms if a.name == CONTROL), self.arms[0])

    @property
    def bounds(self) -> list[int]:
        """Each arm's upper bucket bound (exclusive) out of 10,000, in declared order."""
        total, bounds = 0, []
        for arm in self.arms:
            total += round(arm.weight * 100)
            bounds.append(total)
        return bounds


def check_name(name: str, what: str = "experiment") -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"{what} name {name!r}: use 1-63 letters, digits, '-' or '_', starting with a letter "
            "or digit"
        )
    return name


def parse_window(value: str | int) -> int:
    """``"24h"``, ``"30m"``, ``"1h30m"``, ``"7d"`` (or seconds) -> seconds, 1 s to 90 days.

    Raises:
        InvalidInput: not such a duration (the message quotes it).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        elif _WINDOW.fullmatch(text):
            seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhd])", text))
        else:
            raise InvalidInput(
                f"attribution_window: expected a duration such as 30m, 24h, 1h30m or 7d, "
                f"got {value!r}"
            )
    if not 1 <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidInput(f"attribution_window: expected 1s to 90d, got {value!r}")
    return seconds


def parse_arms(arms: Mapping[str, tuple[str, float]] | Sequence[Any]) -> list[Arm]:
    """Arms from ``{"control": ("home-rules", 50), …}`` (or ``Arm``-shaped dicts), checked:
    at least two, names valid and distinct, campaigns distinct, weights positive in steps of
    0.01 and summing to exactly 100 (not normalised: a typo must not become a split)."""
    if isinstance(arms, Mapping):
        parsed = [Arm(name=n, campaign=c, weight=float(w)) for n, (c, w) in arms.items()]
    else:
        parsed = [a if isinstance(a, Arm) else Arm.model_validate(a) for a in arms]
    if len(parsed) < 2:
        raise InvalidInput(f"arms: an experiment needs at least 2 arms, got {len(parsed)}")
    names = [a.name for a in parsed]
    for arm in parsed:
        check_name(arm.name, "arm")
        if not math.isfinite(arm.weight) or arm.weight <= 0:
            raise InvalidInput(f"arms.{arm.name}.weight: expected a positive percent, got "
                               f"{arm.weight}")  # fmt: skip
        if abs(arm.weight * 100 - round(arm.weight * 100)) > 1e-6:
            raise InvalidInput(
                f"arms.{arm.name}.weight: percents go in steps of 0.01, got {arm.weight}"
            )
    if len(set(names)) != len(names):
        raise InvalidInput(f"arms: names must differ, got {', '.join(names)}")
    campaigns = [a.campaign for a in parsed]
    if len(set(campaigns)) != len(campaigns):
        raise InvalidInput(f"arms: each arm needs its own campaign, got {', '.join(campaigns)}")
    total = sum(round(a.weight * 100) for a in parsed)
    if total != 10_000:
        raise InvalidInput(
            f"arms: weights must sum to 100, got {total / 100:g} "
            f"({', '.join(f'{a.name}={a.weight:g}' for a in parsed)})"
        )
    return parsed


def parse_arm_option(value: str) -> tuple[str, tuple[str, float]]:
    """The CLI's ``NAME=CAMPAIGN:WEIGHT`` -> ``(NAME, (CAMPAIGN, WEIGHT))``."""
    name, sep, rest = value.partition("=")
    campaign, colon, weight = rest.rpartition(":")
    try:
        number = float(weight)
    except ValueError:
        number = math.nan
    if not sep or not colon or not name or not campaign or math.isnan(number):
        raise InvalidInput(f"--arm {value!r}: expected NAME=CAMPAIGN:WEIGHT, e.g. control=home:50")
    return name, (campaign, number)
