"""The serving facade: which version answers, its live updates, and every kind of answer.

Routes and CLI commands call these methods; the functions they use (``recommend.py``) stay free
of the store, so they are tested on arrays alone.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import TypedDict

from tastebud.errors import InvalidInput, NotFound, NotReady
from tastebud.serving.live import LiveFeed
from tastebud.serving.recommend import (
    Scored,
    rank_items,
    recommend_items,
    similar_items,
    similar_users,
    users_for_item,
)
from tastebud.serving.versions import LoadedVersion, VersionCache, load_version, without_users
from tastebud.settings import Settings
from tastebud.store import Store


class VersionRef(TypedDict, total=False):
    """Which model answers: a solution's newest active version, or one version by id."""

    solution: str | None
    version_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    version_id: str
    recommendation_id: str
    results: list[Scored]


class Recommender:
    """Answers requests from trained solution versions of one store. Thread-safe."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.live = LiveFeed(store)
        self.versions = VersionCache(
            self._load_version,
            capacity=settings.serving.cached_versions,
            max_age=settings.serving.refresh_seconds,
        )

    def forget_loaded(self) -> None:
        """Drop loaded versions (after an erasure, so none answers with an erased user)."""
        self.versions.clear()

    def resolve_version(
        self, group: str, *, solution: str | None = None, version_id: str | None = None
    ) -> LoadedVersion:
        """The version that answers: ``version_id``, or the newest active one of ``solution``.

        Raises:
            NotFound: no such solution or version in ``group``.
            NotReady: the solution has no trained version yet (HTTP 503).
        """
        if version_id is not None:
            record = self.store.get_solution_version(version_id)
            if record.group != group:
                raise NotFound(f"solution version {version_id!r} is not in group {group!r}")
            if record.status != "active":
                raise NotReady(f"solution version {version_id!r} is {record.status}")
            return self._live(group, self.versions.get(version_id))
        if solution is None:
            raise InvalidInput("give a solution name or a solutionVersionId")
        self.store.get_solution(group, solution)
        active = [v for v in self.store.list_solution_versions(group, solution)
                  if v.status == "active"]  # fmt: skip
        if not active:
            raise NotReady(f"solution {solution!r} has no trained version yet; train it first")
        return self._live(group, self.versions.get(active[0].id))

    def _live(self, group: str, version: LoadedVersion) -> LoadedVersion:
        self.live.catch_up(group, version)
        return version

    def recommend(
        self, group: str, target: VersionRef, *, user_id: str | None, k: int = 25,
        exclude_seen: bool = True,
    ) -> Answer:  # fmt: skip
        """Items for ``user_id`` from the user's latest events (a new user gets the cold answer)."""
        version = self.resolve_version(group, **target)
        items = recommend_items(
            version, user_id=user_id, history=self.user_history(group, user_id), k=k,
            exclude_seen=exclude_seen,
        )  # fmt: skip
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", items)

    def rank(
        self, group: str, target: VersionRef, *, user_id: str | None, item_ids: Sequence[str]
    ) -> Answer:
        """``item_ids`` ordered for ``user_id``; unknown items kept last, in input order."""
        version = self.resolve_version(group, **target)
        ranked = rank_items(
            version, user_id=user_id, history=self.user_history(group, user_id), item_ids=item_ids
        )
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", ranked)

    def similar_items(self, group: str, target: VersionRef, *, item_id: str, k: int = 25) -> Answer:
        version = self.resolve_version(group, **target)
        items = similar_items(version, item_id=item_id, k=k)
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", items)

    def similar_users(self, group: str, target: VersionRef, *, user_id: str, k: int = 25) -> Answer:
        version = self.resolve_version(group, **target)
        users = similar_users(
            version, user_id=user_id, history=self.user_history(group, user_id), k=k
        )
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", users)

    def users_for_item(
        self, group: str, target: VersionRef, *, item_id: str | None = None,
        attribute: str | None = None, k: int = 100,
    ) -> Answer:  # fmt: skip
        """The segment of users most likely to want an item or an attribute value."""
        version = self.resolve_version(group, **target)
        users = users_for_item(version, item_id=item_id, attribute=attribute, k=k)
        return Answer(version.id, f"seg-{uuid.uuid4().hex}", users)

    def user_history(self, group: str, user_id: str | None) -> list[str]:
        """The user's most recent item ids, oldest first (what the models score from)."""
        if user_id is None:
            return []
        limit = self.settings.serving.history_length
        return [e.item_id for e in self.store.recent_events(group, user_id, limit)]

    def _load_version(self, version_id: str) -> LoadedVersion:
        record = self.store.get_solution_version(version_id)
        version = load_version(self.settings.artifacts / version_id, version_id)
        current = self.store.vocabulary(record.group, "user")
        return without_users(version, lambda user_id: user_id not in current)
