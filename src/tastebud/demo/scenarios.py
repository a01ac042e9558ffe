"""The runnable scenarios of ``tastebud demo --scenario NAME``: one per deployment tastebud is
built for. ``streaming`` (the default) is ``tastebud demo`` itself (``cli/demo.py``); each other
scenario is a function ``run(settings, *, seed, serve)`` in its own module, imported only when
asked for, registered here with a line saying what it shows."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from tastebud.errors import InvalidInput
from tastebud.settings import Settings

DEFAULT = "streaming"
Runner = Callable[..., None]


@dataclass(frozen=True)
class Scenario:
    description: str
    runner: str | None  # "module:function"; None: the default demo


SCENARIOS: dict[str, Scenario] = {
    DEFAULT: Scenario("a streaming service: import, train, serve, live events, batch", None),
    "marketing": Scenario(
        "a travel marketer: a segment for one route, an email campaign sent, opens and clicks "
        "tracked, the report",
        "tastebud.messaging.demo:run",
    ),
    "reels": Scenario("personalized trailer reels for two users", "tastebud.reels.demo:run"),
    "live-shows": Scenario(
        "a live-streaming app: features from the event stream, a learned ranker, an A/B test "
        "of ranker against rules on simulated viewers, the report",
        "tastebud.demo.live_shows:run",
    ),
}


def runner(name: str) -> Runner | None:
    """The scenario's function (None for the default demo).

    Raises:
        InvalidInput: no scenario has that name (the message lists them).
    """
    scenario = SCENARIOS.get(name)
    if scenario is None:
        known = ", ".join(f"{n} ({s.description})" for n, s in SCENARIOS.items())
        raise InvalidInput(f"scenario {name!r}: unknown; one of {known}")
    if scenario.runner is None:
        return None
    module, _, function = scenario.runner.partition(":")
    found: Runner = getattr(importlib.import_module(module), function)
    return found


def run(name: str, settings: Settings, *, seed: int, serve: bool) -> bool:
    """Run scenario ``name``; False when it is the default demo (the caller runs that)."""
    found = runner(name)
    if found is None:
        return False
    found(settings, seed=seed, serve=serve)
    return True
