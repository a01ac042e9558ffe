"""The serving facade: which version answers, its live updates, and every kind of answer.

Routes and CLI commands call these methods; the functions they use (``recommend.py``) stay free
of the store, so they are tested on arrays alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal, TypedDict

import numpy as np

from tastebud import observability
from tastebud.errors import InvalidInput, NotFound, NotReady, StoreUnavailable
from tastebud.filters import FilterRequest, FilterRuntime, Selection
from tastebud.recipes import history_window
from tastebud.recipes.base import IntArray, OnlineFeatures, Query, declared_features
from tastebud.serving.explain import explain_results
from tastebud.serving.history import (
    UserHistory,
    events_to_read,
    seen_from_events,
    seen_from_store,
)
from tastebud.serving.intent import Intent, predicted_intent
from tastebud.serving.live import LiveFeed
from tastebud.serving.recommend import (
    Scored,
    answer_from_scores,
    check_horizon,
    check_item_list,
    check_k,
    horizon_scores,
    list_scores,
    nearest_items,
    note_full_scan,
    rank_by_scores,
    shortlisted_items,
    similar_items,
    similar_users,
    users_for_item,
)
from tastebud.serving.versions import (
    LoadedVersion,
    VersionCache,
    load_version,
    with_nearest,
    without_users,
)
from tastebud.settings import Settings
from tastebud.store import Event, Store

FilterValues = Mapping[str, Sequence[str] | str]


@dataclasses.dataclass
class StoreOutage:
    """Whether an answer was computed without something the store should have given."""

    seen: bool = False


_OUTAGE: contextvars.ContextVar[StoreOutage | None] = contextvars.ContextVar(
    "tastebud_store_outage", default=None
)


@contextlib.contextmanager
def store_outage() -> Iterator[StoreOutage]:
    """Tells whether the answers computed inside fell back on a store outage (a history read
    as empty, live updates skipped): such answers are given, never cached."""
    outage = StoreOutage()
    token = _OUTAGE.set(outage)
    try:
        yield outage
    finally:
        _OUTAGE.reset(token)


def _note_outage() -> None:
    observability.degraded_answer("store")
    outage = _OUTAGE.get()
    if outage is not None:
        outage.seen = True


class VersionRef(TypedDict, total=False):
    """Which model answers: a solution's newest active version, or one version by id."""

    solution: str | None
    version_id: str | None


Target = VersionRef | LoadedVersion


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    version_id: str
    recommendation_id: str
    results: list[Scored]
    intent: Intent | None = None  # asked for (include_intent): the user's predicted intent


class Recommender:
    """Answers requests from trained solution versions of one store. Thread-safe."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.live = LiveFeed(store)
        self.versions = VersionCache(
            self._load_version,
            refresh=self._mask_erased,
            capacity=settings.serving.cached_versions,
            max_age=settings.serving.refresh_seconds,
        )
        # Compiled filters and the item metadata they read are rebuilt on the same delay.
        self.filters = FilterRuntime(store, ttl=settings.serving.refresh_seconds)
        # Declared features for the models that read them (the engine sets its feature store).
        self.features: OnlineFeatures | None = None
        self._lookups: dict[str, IntArray] = {}  # version id -> item_lookup
        self._lookups_lock = threading.Lock()

    def forget_loaded(self) -> None:
        """Drop loaded versions (after an erasure, so none answers with an erased user)."""
        self.versions.clear()
        with self._lookups_lock:
            self._lookups.clear()

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

    def version_for(self, group: str, target: Target) -> LoadedVersion:
        """The version a request names, or the one a campaign resolved for it."""
        if isinstance(target, LoadedVersion):
            return self._live(group, target)
        return self.resolve_version(group, **target)

    def _live(self, group: str, version: LoadedVersion) -> LoadedVersion:
        try:
            self.live.catch_up(group, version)
        except StoreUnavailable:  # the loaded model answers as it last knew the events
            _note_outage()
        return version

    def recommend(
        self, group: str, target: Target, *, user_id: str | None, k: int = 25,
        exclude_seen: bool = True, filter_name: str | None = None,
        filter_values: FilterValues | None = None, context: Mapping[str, str] | None = None,
        explain: bool = False, horizon: int = 1, include_intent: bool = False,
    ) -> Answer:  # fmt: skip
        """Items for ``user_id`` from the user's latest events (a new user gets the cold answer),
        limited by the named filter when one is given; ``context`` (e.g. the device) reaches
        the models that read it. ``explain``: each result carries its reasons. ``horizon`` > 1
        ranks for the user's next few actions (a model that learned them, else InvalidInput);
        ``include_intent``: the answer carries the predicted intent (a model with intent heads)."""
        version = self.version_for(group, target)
        check_k(k)
        check_horizon(version, horizon)
        history = self.read_history(group, version, user_id, filtered=filter_name is not None)
        selection = self.select(
            group, version, filter_name, filter_values, user_id=user_id,
            events=history.filter_events, event_items=history.filter_event_items,
        )  # fmt: skip
        query = self._with_features(
            group, version, history.query(version, user_id, context=context), user_id, context
        )
        seen = history.seen_items if exclude_seen else None
        items = nearest_items(
            version, query, k=k, exclude_seen=exclude_seen, seen=seen, selection=selection
        ) if version.nearest is not None and horizon == 1 else None  # fmt: skip
        if items is None and horizon == 1:
            items = shortlisted_items(version, query, k=k, seen=seen, selection=selection)
        if items is None:
            scores = horizon_scores(version, query, horizon)
            if horizon == 1:
                note_full_scan(version, query, scores)
            items = answer_from_scores(version, scores, k, seen, selection)
        if explain:
            items = explain_results(version, query, items, filter_name=filter_name)
        intent = predicted_intent(version, query) if include_intent else None
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", items, intent)

    def _with_features(
        self, group: str, version: LoadedVersion, query: Query, user_id: str | None,
        context: Mapping[str, str] | None,
    ) -> Query:  # fmt: skip
        """``query`` with a lookup of the user's declared features now, for a model that reads
        some (the ranker); its errors (Redis down) fail the scoring, for the campaign's fallback."""
        names = declared_features(version.model)
        features = self.features
        if not names or features is None:
            return query

        def lookup(row: int, items: IntArray, wanted: tuple[str, ...]) -> np.ndarray:
            ids = [i or "" for i in version.items.ids(items.tolist())]
            return features.online(group, wanted, user_id=user_id, item_ids=ids, context=context)

        return dataclasses.replace(query, feature_lookup=lookup)

    def rank(
        self, group: str, target: Target, *, user_id: str | None, item_ids: Sequence[str],
        filter_name: str | None = None, filter_values: FilterValues | None = None,
        context: Mapping[str, str] | None = None, explain: bool = False,
    ) -> Answer:  # fmt: skip
        """``item_ids`` ordered for ``user_id``; unknown items kept last, in input order. Items
        the named filter does not allow are dropped from the list. ``explain``: each result
        carries its reasons."""
        version = self.version_for(group, target)
        check_item_list(item_ids)
        # A ranking excludes nothing: the seen items are read only for a model that scores
        # from them (a whole-history one); for long histories that is a second store query.
        history = self.read_history(group, version, user_id, filtered=filter_name is not None,
                                    seen=False)  # fmt: skip
        selection = self.select(
            group, version, filter_name, filter_values, user_id=user_id,
            events=history.filter_events, event_items=history.filter_event_items,
        )  # fmt: skip
        query = self._with_features(
            group, version, history.query(version, user_id, context=context), user_id, context
        )
        indexes = version.items.indices(item_ids)
        scores = list_scores(version, query, item_ids, indexes)
        ranked = rank_by_scores(version, scores, item_ids, selection, indexes)
        if explain:
            ranked = explain_results(version, query, ranked, filter_name=filter_name,
                                     unscored=None)  # fmt: skip
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", ranked)

    def similar_items(
        self, group: str, target: Target, *, item_id: str, k: int = 25,
        user_id: str | None = None, filter_name: str | None = None,
        filter_values: FilterValues | None = None,
    ) -> Answer:  # fmt: skip
        """Items like ``item_id``. ``user_id`` only serves filters (its events, its profile);
        ``CurrentItem`` in a filter is ``item_id``."""
        version = self.version_for(group, target)
        selection = None
        if filter_name is not None or filter_values:
            events = self.user_events(group, user_id)
            selection = self.select(
                group, version, filter_name, filter_values, user_id=user_id, events=events,
                item_id=item_id,
            )  # fmt: skip
        items = similar_items(version, item_id=item_id, k=k, selection=selection)
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", items)

    def similar_users(self, group: str, target: Target, *, user_id: str, k: int = 25) -> Answer:
        version = self.version_for(group, target)
        users = similar_users(
            version, user_id=user_id, history=self.user_history(group, user_id), k=k
        )
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", users)

    def users_for_item(
        self, group: str, target: Target, *, item_id: str | None = None,
        attribute: str | None = None, k: int = 100, filter_name: str | None = None,
        filter_values: FilterValues | None = None,
    ) -> Answer:  # fmt: skip
        """The segment of users most likely to want an item or an attribute value, limited by
        the named ``UserID`` filter when one is given."""
        version = self.version_for(group, target)
        selection = self.select(group, version, filter_name, filter_values, kind="users")
        users = users_for_item(
            version, item_id=item_id, attribute=attribute, k=k, selection=selection
        )
        return Answer(version.id, f"seg-{uuid.uuid4().hex}", users)

    def select(
        self, group: str, version: LoadedVersion, filter_name: str | None,
        filter_values: FilterValues | None, *, kind: Literal["items", "users"] = "items",
        user_id: str | None = None, events: Sequence[Event] = (),
        event_items: IntArray | None = None, item_id: str | None = None,
    ) -> Selection | None:  # fmt: skip
        """What the named filter lets through for this request (None without a filter).

        Raises:
            NotFound: no such filter.
            InvalidInput: values without a filter, a filter of the wrong kind (ItemID for
                segments, UserID for items), or bad ``filter_values``.
        """
        if filter_name is None:
            if filter_values:
                raise InvalidInput("filterValues: given without a filterName")
            return None
        compiled = self.filters.get(
            group, filter_name, version_id=version.id, items=version.items, users=version.users
        )
        if compiled.kind != kind:
            wanted = "ItemID" if kind == "items" else "UserID"
            raise InvalidInput(
                f"filterName: filter {filter_name!r} filters {compiled.target}, and this request "
                f"needs one that filters {wanted}"
            )
        profile = None
        if compiled.needs_user and user_id is not None:
            record = self.store.get_user(group, user_id)
            profile = None if record is None else record.fields
        request = FilterRequest(
            values=dict(filter_values or {}), user=profile, events=events,
            event_items=event_items, item_id=item_id,
        )  # fmt: skip
        return compiled.select(request)

    def read_history(
        self, group: str, version: LoadedVersion, user_id: str | None, *, filtered: bool,
        seen: bool = True,
    ) -> UserHistory:  # fmt: skip
        """What a request for ``user_id`` reads of its history (see ``serving/history.py``):
        ``version``'s scoring window, the events a filter sees (``filtered``), every seen item
        (``seen``, or when the model scores from them: a whole-history model)."""
        filter_length = self.settings.serving.history_length
        window = history_window(version.model, default=filter_length)
        if user_id is None:
            nothing = np.zeros(0, np.int32)
            return UserHistory([], nothing, window, filter_length, nothing)
        limit = events_to_read(window, filter_length, filtered=filtered)
        try:
            events = self.store.recent_events(group, user_id, limit) if limit else []
            event_items = version.items.indices([e.item_id for e in events])
            if not seen and window is not None:
                return UserHistory(events, event_items, window, filter_length, None)
            if len(events) < limit:  # the events read are the whole history
                items = seen_from_events(event_items)
            else:
                store_items = self.store.seen_item_indexes(group, user_id)
                items = seen_from_store(store_items, self.item_lookup(group, version))
        except StoreUnavailable:
            # The model still answers, as for a visitor it has not seen (docs/operations.md,
            # "Failure modes"): better than no answer while the store is down.
            _note_outage()
            nothing = np.zeros(0, np.int32)
            return UserHistory([], nothing, window, filter_length, nothing)
        return UserHistory(events, event_items, window, filter_length, items)

    def item_lookup(self, group: str, version: LoadedVersion) -> IntArray:
        """``version``'s index of each of the store's item indexes, then a -1 (items unknown
        to it; store indexes past the end are items newer than the lookup, so unknown too)."""
        lookup = self._lookups.get(version.id)
        if lookup is None:
            store_items = self.store.vocabulary(group, "item")
            ids = store_items.ids(range(len(store_items)))
            known = version.items.indices(i if i is not None else "" for i in ids)
            lookup = np.append(known, -1).astype(np.int32)
            with self._lookups_lock:
                if len(self._lookups) >= 2 * self.settings.serving.cached_versions:
                    self._lookups.clear()
                self._lookups[version.id] = lookup
        return lookup

    def user_events(self, group: str, user_id: str | None) -> list[Event]:
        """The user's latest ``serving.history_length`` events, oldest first (what filters
        read, and models that declare no history window)."""
        if user_id is None:
            return []
        return self.store.recent_events(group, user_id, self.settings.serving.history_length)

    def user_history(self, group: str, user_id: str | None) -> list[str]:
        """The items of :meth:`user_events`, oldest first."""
        return [e.item_id for e in self.user_events(group, user_id)]

    def _load_version(self, version_id: str) -> LoadedVersion:
        version = load_version(self.settings.artifacts / version_id, version_id)
        serving = self.settings.serving
        version = with_nearest(version, min_items=serving.approximate_from_items,
                               probe_share=serving.approximate_probe_share)  # fmt: skip
        return self._mask_erased(version)

    def _mask_erased(self, version: LoadedVersion) -> LoadedVersion:
        """``version`` with the users erased since it was trained marked deleted."""
        record = self.store.get_solution_version(version.id)
        current = self.store.vocabulary(record.group, "user")
        return without_users(version, lambda user_id: user_id not in current)
