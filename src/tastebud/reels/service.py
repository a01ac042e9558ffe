"""Personalized reels: a user's ranking of the catalogue's titles turned into a planned reel.

The titles are ranked by the same path as ``tastebud rank`` and ``POST …/personalized-ranking``
(the solution's newest version, the user's latest events, the request's filter), so a reel
shows what the served ranking and offline evaluation measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tastebud.errors import InvalidInput, NotFound
from tastebud.reels.catalogue import Catalogue
from tastebud.reels.compose import Plan, plan_reel
from tastebud.reels.timeline import edit_list
from tastebud.serving import MAX_RESULTS
from tastebud.serving.service import FilterValues, Recommender, Target
from tastebud.store import Store

MAX_SECONDS = 600


@dataclass(frozen=True, slots=True)
class ReelRequest:
    user_id: str
    catalogue: Catalogue
    seconds: float
    cadence: str | None = None
    filter_name: str | None = None
    filter_values: FilterValues | None = None


@dataclass(frozen=True, slots=True)
class Reel:
    user_id: str
    version_id: str
    recommendation_id: str
    plan: Plan

    def edit_list(self) -> dict[str, Any]:
        return edit_list(self.plan, userId=self.user_id, solutionVersionId=self.version_id,
                         recommendationId=self.recommendation_id)  # fmt: skip


class ReelService:
    """Composes reels from one store's solutions. Thread-safe (it keeps no state)."""

    def __init__(self, store: Store, recommender: Recommender) -> None:
        self.store = store
        self.recommender = recommender

    def compose(self, group: str, target: Target, request: ReelRequest) -> Reel:
        """The reel for ``request.user_id``: the catalogue's titles ranked for the user (the
        filter drops titles it does not allow), then planned (see ``reels/compose.py``).

        Raises:
            NotFound: no such solution, version or filter, or a user the group has never seen.
            NotReady: the solution has no trained version yet.
            InvalidInput: too long, too many titles, a bad cadence, footage that cannot fill it.
        """
        if not 0 < request.seconds <= MAX_SECONDS:
            raise InvalidInput(f"seconds: expected more than 0 and at most {MAX_SECONDS}, "
                               f"got {request.seconds}")  # fmt: skip
        version = self.recommender.version_for(group, target)
        self._check_user(group, request.user_id)
        titles = request.catalogue.titles()
        if len(titles) > MAX_RESULTS:
            raise InvalidInput(f"the clip catalogue names {len(titles)} titles; a reel ranks at "
                               f"most {MAX_RESULTS}")  # fmt: skip
        answer = self.recommender.rank(
            group, version, user_id=request.user_id, item_ids=titles,
            filter_name=request.filter_name, filter_values=request.filter_values,
        )  # fmt: skip
        frames = round(Fraction(request.seconds) * request.catalogue.fps)
        plan = plan_reel([r.id for r in answer.results], request.catalogue, frames=frames,
                         cadence=request.cadence)  # fmt: skip
        return Reel(request.user_id, answer.version_id, answer.recommendation_id, plan)

    def _check_user(self, group: str, user_id: str) -> None:
        """A reel is for a known user: one with events or a profile (a typo should not get a
        new visitor's reel)."""
        if self.store.recent_events(group, user_id, 1) or self.store.get_user(group, user_id):
            return
        raise NotFound(f"user {user_id!r}: no events and no profile in group {group!r}")
