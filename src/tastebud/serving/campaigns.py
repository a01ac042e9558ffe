"""Campaigns: the real-time endpoint of a deployed solution.

A request to a campaign picks its source (the deployed model, or the rule engine while the group
has too little data or no trained version), looks in the result cache, answers through the
:class:`Recommender` with promotions merged in, and remembers the answer until its TTL passes or
the user acts. The campaign record is re-read every second, so a deployment made through any
worker reaches all of them within that delay, and the version it names is loaded before it
answers: requests during a switch are served by the old version or the new one, never failed.

A campaign with a ``precomputed`` source (a batch job's answers in Redis, see
``serving/precomputed.py``) answers from it when its model cannot — no version loadable, the
model raising, or the process too busy — and from the rule engine when Redis has nothing either.
A campaign with ``fallback: rules`` answers from the rule engine when its model cannot, or when
the model's answer would come after ``deadline_ms`` (issue 15: a ranker whose features are out of
reach still gives viewers a sensible order). Without either, nothing of that runs.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tastebud import observability
from tastebud.errors import InvalidInput, NotFound, NotReady, StoreUnavailable
from tastebud.serving.cache import ResultCache
from tastebud.serving.explain import filter_reason, with_promotion, with_reason
from tastebud.serving.precomputed import PrecomputedConfig, PrecomputedSources, stored_items
from tastebud.serving.recommend import Scored, check_item_list, check_k
from tastebud.serving.rules import RulesCache, RulesConfig
from tastebud.serving.service import FilterValues, Recommender, store_outage
from tastebud.serving.versions import LoadedVersion
from tastebud.store import CampaignRecord, Store

LATEST = "latest"
RECORD_SECONDS = 1.0  # how long a worker trusts its copy of a campaign record
MAX_PROMOTIONS = 1  # as in the managed service: one promotion per request
LOAD_RETRY_SECONDS = 5.0  # a version that failed to load is not tried again for this long

Source = Literal["model", "rules"]
FallbackReason = Literal["load_error", "score_error", "overload", "deadline"]
# Told of every answer `recommend` gives: (group, campaign, user id, answer).
AnswerListener = Callable[[str, str, "str | None", Mapping[str, Any]], None]
_log = logging.getLogger(__name__)
# Model answers with a deadline run here, so the request thread can stop waiting for them.
_DEADLINE_POOL = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="tastebud-deadline")


class CampaignConfig(BaseModel):
    """A campaign's serving settings (``config`` of the resource)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cache_ttl_seconds: float = Field(
        default=600.0, ge=0.0, le=86_400.0,
        description="how long an answer is reused (0: no cache); a user's event drops theirs",
    )  # fmt: skip
    min_interactions: int = Field(
        default=1_000, ge=0,
        description="below this many interactions in the group the rule engine answers",
    )  # fmt: skip
    rules: RulesConfig = RulesConfig()
    new_items_share: float = Field(
        default=0.1, ge=0.0, le=0.5,
        description="share of a model's answer given to items added since it was trained "
        "(newest first), so they are recommendable without retraining; 0: none",
    )  # fmt: skip
    precomputed: PrecomputedConfig | None = Field(
        default=None,
        description="a batch job's answers in Redis, served when the model cannot answer",
    )
    fallback: Literal["none", "rules"] = Field(
        default="none",
        description="when the model cannot answer (its version does not load, scoring fails, "
        "e.g. its features are out of reach, or deadline_ms passes): 'rules' answers from the "
        "rule engine (source 'rules'); 'none' returns the error. A precomputed source, when "
        "set, is tried first",
    )
    deadline_ms: float | None = Field(
        default=None, gt=0, le=60_000,
        description="a model answer not ready within this many milliseconds is replaced by the "
        "fallback's (needs fallback 'rules' or a precomputed source)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _deadline_needs_a_fallback(self) -> CampaignConfig:
        if self.deadline_ms is not None and self.fallback == "none" and self.precomputed is None:
            raise ValueError("deadline_ms needs fallback 'rules' or a precomputed source")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class Promotion:
    """A share of the answer taken from items a promotion filter allows."""

    name: str
    percent: int
    filter_name: str
    filter_values: FilterValues | None = None

    def count(self, k: int) -> int:
        return min(k, max(1, round(k * self.percent / 100)))


@dataclasses.dataclass(frozen=True, slots=True)
class CampaignRequest:
    user_id: str | None = None
    item_id: str | None = None  # similar items: the campaign's recipe must answer them
    k: int = 25
    exclude_seen: bool = True
    filter_name: str | None = None
    filter_values: FilterValues | None = None
    context: Mapping[str, str] | None = None
    promotions: Sequence[Promotion] = ()
    input_list: Sequence[str] | None = None  # personalized ranking
    explain: bool = False  # each item carries its reasons (docs/explanations.md)


@dataclasses.dataclass(frozen=True, slots=True)
class Deployment:
    """What a campaign record resolves to now."""

    record: CampaignRecord
    config: CampaignConfig
    version_id: str | None  # None: no active version yet


class CampaignServer:
    """Answers campaign requests from one store; thread-safe."""

    def __init__(self, store: Store, recommender: Recommender, cache: ResultCache) -> None:
        self.store = store
        self.recommender = recommender
        self.cache = cache
        self.rules = RulesCache(store)
        self.precomputed = PrecomputedSources()
        self.load_retry_seconds = LOAD_RETRY_SECONDS
        self._unloadable: dict[str, float] = {}  # version id -> when loading may be tried again
        self._records: dict[tuple[str, str], tuple[float, Deployment]] = {}
        self._enough: dict[tuple[str, int], bool] = {}  # groups known to have enough data
        self._lock = threading.Lock()
        # Metric attributions log answers here (the experiments package); a cached answer
        # served by `cached` repeats a recommendation id logged when it was computed.
        self.on_answer: AnswerListener | None = None

    # resolution -------------------------------------------------------------------------------
    def deployment(self, group: str, name: str, *, wait: bool = True) -> Deployment:
        """The campaign's record as resolved at most a second ago. ``wait=False`` (the event
        loop): while the store is known to be down, the last one, without trying the store."""
        now = time.monotonic()
        with self._lock:
            cached = self._records.get((group, name))
        if cached is not None and now - cached[0] < RECORD_SECONDS:
            return cached[1]
        breaker = getattr(self.store, "breaker", None)  # PostgreSQL's (SQLite has no outages)
        if cached is not None and not wait and breaker is not None and breaker.down:
            return cached[1]
        try:
            record = self.store.get_campaign(group, name)
            version_id = self._version_id(record)
        except StoreUnavailable:
            if cached is None:
                raise
            return cached[1]  # the store is down: what was deployed last still answers
        deployment = Deployment(record, CampaignConfig.model_validate(dict(record.config)),
                                version_id)  # fmt: skip
        with self._lock:
            self._records[(group, name)] = (now, deployment)
        return deployment

    def forget(self, group: str, name: str | None = None) -> None:
        """Drop cached records (after a change made in this process: seen at once)."""
        with self._lock:
            self._records = {k: v for k, v in self._records.items()
                             if k[0] != group or (name is not None and k[1] != name)}  # fmt: skip
            self._unloadable.clear()  # a (re)deployment tries its version again at once

    def _version_id(self, record: CampaignRecord) -> str | None:
        if record.deployed != LATEST:
            return record.deployed
        versions = self.store.list_solution_versions(record.group, record.solution)
        active = [v for v in versions if v.status == "active"]
        return active[0].id if active else None

    def source(self, group: str, deployment: Deployment) -> tuple[Source, LoadedVersion]:
        """The model when there is a version and enough data; the rule engine otherwise."""
        threshold = deployment.config.min_interactions
        if deployment.version_id is not None and self._has_enough(group, threshold):
            return "model", self.recommender.versions.get(deployment.version_id)
        return "rules", self.rules.get(group, deployment.config.rules)

    def _has_enough(self, group: str, threshold: int) -> bool:
        if threshold <= 0 or self._enough.get((group, threshold)):
            return True
        enough = self.store.interaction_count(group, cap=threshold) >= threshold
        if enough:  # data only grows (erasures aside): never counted again
            self._enough[(group, threshold)] = True
        return enough

    # answers ----------------------------------------------------------------------------------
    def recommend(self, group: str, name: str, request: CampaignRequest) -> dict[str, Any]:
        """The campaign's answer (from the cache when still valid) as the API returns it."""
        _check(request)
        deployment = self.deployment(group, name)
        if deployment.config.precomputed is not None or deployment.config.fallback == "rules":
            answer = self._answer_or_fall_back(group, name, deployment, request)
        else:
            source, version = self.source(group, deployment)
            answer = self._answer(group, name, source, version, deployment, request)
        if self.on_answer is not None:
            self.on_answer(group, name, request.user_id, answer)
        return answer

    def cached(self, group: str, name: str, request: CampaignRequest) -> bytes | None:
        """The model's cached answer to ``request`` as the API returns it (JSON), when one is
        valid now; None otherwise, then :meth:`recommend` answers. It never loads a version or
        computes an answer, so the server can call it on its event loop; the tail of new events
        is read on a background thread (:meth:`ResultCache.sync_soon`), the campaign's record
        once a second, and Redis never: an answer this process has no copy of is looked up
        there by :meth:`recommend`, on a thread (a round trip here held every request of the
        event loop behind it)."""
        deployment = self.deployment(group, name, wait=False)
        config, version_id = deployment.config, deployment.version_id
        if (config.cache_ttl_seconds <= 0 or config.precomputed is not None
                or version_id is None or not self.recommender.versions.is_loaded(version_id)
                or not (config.min_interactions <= 0
                        or self._enough.get((group, config.min_interactions)))):  # fmt: skip
            return None  # no cache, a fallback to consider, or the rules: the full path decides
        key = _cache_key(name, version_id, deployment, request)
        self.cache.sync_soon(group)
        hit = self.cache.nearby(group, request.user_id or "", key)
        if hit is None:
            return None  # counted as a hit or a miss by `recommend`
        observability.cache_hit("campaign_answers")
        return hit[:-1] + b',"cache":"hit"}'  # the stored object, closed with its marker

    def _answer(
        self, group: str, name: str, source: Source, version: LoadedVersion,
        deployment: Deployment, request: CampaignRequest,
    ) -> dict[str, Any]:  # fmt: skip
        ttl = deployment.config.cache_ttl_seconds
        if ttl <= 0:
            return {**self._compute(name, source, version, deployment, request), "cache": "off"}
        user, key = request.user_id or "", _cache_key(name, version.id, deployment, request)
        watermark = self.cache.sync(group)
        if (hit := self.cache.get(group, user, key)) is not None:
            observability.cache_hit("campaign_answers")
            return {**orjson.loads(hit), "cache": "hit"}
        observability.cache_miss("campaign_answers")
        with store_outage() as outage:
            answer = self._compute(name, source, version, deployment, request)
        if outage.seen:  # from a partial history: not to be served once the store is back
            return {**answer, "cache": "off"}
        self.cache.put(group, user, key, orjson.dumps(answer), ttl=ttl, watermark=watermark)
        return {**answer, "cache": "miss"}

    def _compute(
        self, name: str, source: Source, version: LoadedVersion, deployment: Deployment,
        request: CampaignRequest,
    ) -> dict[str, Any]:  # fmt: skip
        group = deployment.record.group
        rules = deployment.config.rules if source == "rules" else None
        recommendation_id = f"rec-{uuid.uuid4().hex}"
        if request.input_list is not None:
            ranked = self.recommender.rank(
                group, version, user_id=request.user_id, item_ids=request.input_list,
                filter_name=request.filter_name, filter_values=request.filter_values,
                context=request.context, explain=request.explain,
            ).results  # fmt: skip
            items = _listed(ranked)
        else:
            share = 0.0 if source == "rules" else deployment.config.new_items_share
            items = self._items(group, version, request, rules, share, recommendation_id)
        return {
            "recommendationId": recommendation_id,
            "campaign": name,
            "source": source,
            "solutionVersionId": version.id if source == "model" else None,
            "itemList": items,
        }

    def _items(
        self, group: str, version: LoadedVersion, request: CampaignRequest,
        rules: RulesConfig | None, new_items_share: float, recommendation_id: str,
    ) -> list[dict[str, Any]]:  # fmt: skip
        name, values = request.filter_name, request.filter_values
        if rules is not None and rules.filter is not None and name is None:
            name, values = rules.filter, rules.filter_values  # the rules' own metadata rule
        regular = self._ranked(group, version, request, request.k, name, values)
        if rules is not None and rules.filter is not None and name != rules.filter:
            # Both the request's filter and the rules' filter: keep what both allow.
            allowed = {s.id for s in self._ranked(group, version, request, 500, rules.filter,
                                                  rules.filter_values)}  # fmt: skip
            regular = [s for s in regular if s.id in allowed]
            if request.explain:
                regular = [with_reason(s, filter_reason(rules.filter)) for s in regular]
        if new_items_share > 0 and request.item_id is None:
            regular = self._with_new_items(group, version, request, regular, new_items_share)
        if not request.promotions:
            return _listed(regular[: request.k])
        promotion = request.promotions[0]
        promoted = self._ranked(group, version, request, promotion.count(request.k),
                                promotion.filter_name, promotion.filter_values)  # fmt: skip
        if request.explain:
            promoted = [with_promotion(s, promotion.name, promotion.filter_name) for s in promoted]
        return merge_promoted(regular, promoted, promotion.name, request.k, recommendation_id)

    def _with_new_items(
        self, group: str, model: LoadedVersion, request: CampaignRequest, regular: list[Scored],
        share: float,
    ) -> list[Scored]:  # fmt: skip
        """``regular`` with every ``1/share``-th position given to an item the model was not
        trained with (the request's filter and the user's history apply to them too)."""
        fresh = self.rules.new_items(group, model)
        if fresh is None:
            return regular
        count = max(1, int(request.k * share))
        new = self._ranked(group, fresh, request, count, request.filter_name,
                           request.filter_values)  # fmt: skip
        new = [s for s in new if s.score is not None and np.isfinite(s.score)][:count]
        if not new:
            return regular
        every = max(2, round(1 / share))
        merged: list[Scored] = []
        pending = iter(new)
        for item in regular:
            if len(merged) % every == every - 1 and (fresh_item := next(pending, None)):
                merged.append(dataclasses.replace(fresh_item, score=None))
            merged.append(item)
        return merged

    def _ranked(
        self, group: str, version: LoadedVersion, request: CampaignRequest, k: int,
        filter_name: str | None, filter_values: FilterValues | None,
    ) -> list[Scored]:  # fmt: skip
        r = self.recommender
        if request.item_id is not None:
            return r.similar_items(group, version, item_id=request.item_id, k=min(k, 500),
                                   user_id=request.user_id, filter_name=filter_name,
                                   filter_values=filter_values).results  # fmt: skip
        answer = r.recommend(
            group, version, user_id=request.user_id, k=min(k, 500),
            exclude_seen=request.exclude_seen, filter_name=filter_name,
            filter_values=filter_values, context=request.context, explain=request.explain,
        )  # fmt: skip
        return answer.results

    # the precomputed fallback -----------------------------------------------------------------
    def _answer_or_fall_back(
        self, group: str, name: str, deployment: Deployment, request: CampaignRequest
    ) -> dict[str, Any]:
        """The model's answer while it can give one, else a fallback's (:meth:`_fall_back`).
        Errors of the request itself (an unknown filter, bad values) fail it as usual."""
        config, version_id = deployment.config.precomputed, deployment.version_id
        if version_id is None:  # no version yet: the rule engine, as always
            source, version = self.source(group, deployment)
            return self._answer(group, name, source, version, deployment, request)
        share = None if config is None else config.overload_share
        if share is not None and observability.inflight_share() >= share:
            return self._fall_back(group, name, deployment, request, "overload")
        if self._unloadable.get(version_id, 0.0) > time.monotonic():
            return self._fall_back(group, name, deployment, request, "load_error")
        try:
            source, version = self.source(group, deployment)
        except Exception as error:  # artifacts missing or corrupt, an unreadable format, ...
            self._unloadable[version_id] = time.monotonic() + self.load_retry_seconds
            return self._fall_back(group, name, deployment, request, "load_error", error)
        try:
            return self._answer_in_time(group, name, source, version, deployment, request)
        except (InvalidInput, NotFound):
            raise
        except concurrent.futures.TimeoutError:
            return self._fall_back(group, name, deployment, request, "deadline")
        except Exception as error:
            if source != "model":
                raise
            return self._fall_back(group, name, deployment, request, "score_error", error)

    def _answer_in_time(
        self, group: str, name: str, source: Source, version: LoadedVersion,
        deployment: Deployment, request: CampaignRequest,
    ) -> dict[str, Any]:  # fmt: skip
        """:meth:`_answer`, raising TimeoutError past the campaign's ``deadline_ms``. The late
        answer is still computed (and cached) on a thread of its own: Python cannot stop it."""
        deadline = deployment.config.deadline_ms
        if deadline is None or source != "model":
            return self._answer(group, name, source, version, deployment, request)
        future = _DEADLINE_POOL.submit(
            self._answer, group, name, source, version, deployment, request
        )
        return future.result(timeout=deadline / 1000)

    def _fall_back(
        self, group: str, name: str, deployment: Deployment, request: CampaignRequest,
        reason: FallbackReason, error: Exception | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The model's cached answer when there is one (no model work); else the precomputed
        answer; else the rule engine's (whose failure, if any, is the request's error)."""
        if reason != "score_error":  # after a scoring error the cache was just missed
            cached = self._cached_model_answer(group, name, deployment, request)
            if cached is not None:
                return cached
        answer = self._precomputed_answer(group, name, deployment, request)
        source = "rules" if answer is None else "precomputed"
        observability.campaign_fallback(name, reason, source)
        _log.warning(
            "campaign fallback campaign=%s reason=%s source=%s group=%s%s", name, reason, source,
            group, "" if error is None else f" error={type(error).__name__}: {error}",
        )  # fmt: skip
        if answer is not None:
            return answer
        rules = self.rules.get(group, deployment.config.rules)
        return self._answer(group, name, "rules", rules, deployment, request)

    def _cached_model_answer(
        self, group: str, name: str, deployment: Deployment, request: CampaignRequest
    ) -> dict[str, Any] | None:
        if deployment.config.cache_ttl_seconds <= 0 or deployment.version_id is None:
            return None
        key = _cache_key(name, deployment.version_id, deployment, request)
        self.cache.sync(group)
        if (hit := self.cache.get(group, request.user_id or "", key)) is None:
            return None
        observability.cache_hit("campaign_answers")
        return {**orjson.loads(hit), "cache": "hit"}

    def _precomputed_answer(
        self, group: str, name: str, deployment: Deployment, request: CampaignRequest
    ) -> dict[str, Any] | None:
        """The stored answer for the request's user (or item), less what :meth:`_still_allowed`
        drops, cut to ``k``; None when there is none (or nothing left), or Redis is down.
        Never cached: the model answers again as soon as it can."""
        config = deployment.config.precomputed
        key = request.item_id if request.item_id is not None else request.user_id
        if config is None or key is None or request.input_list is not None:
            return None  # a visitor has no entry; a list to rank was not precomputed
        try:
            stored = self.precomputed.reader(config.url).get(config.key_prefix, key)
        except NotReady as error:
            _log.warning("precomputed unavailable campaign=%s error=%s", name, error.message)
            return None
        items = None if stored is None else stored_items(stored)
        if stored is None or not items:
            return None
        if not (items := self._still_allowed(group, deployment, request, items)):
            return None
        version_id = stored.get("solutionVersionId")
        return {
            "recommendationId": f"rec-{uuid.uuid4().hex}",
            "campaign": name,
            "source": "precomputed",
            "solutionVersionId": version_id if isinstance(version_id, str) else None,
            "itemList": _listed(items[: request.k]),
            "cache": "off",
        }

    def _still_allowed(
        self, group: str, deployment: Deployment, request: CampaignRequest, items: list[Scored]
    ) -> list[Scored]:
        """``items`` without those in the user's latest events (``exclude_seen``, user requests)
        and those the request's filter does not let through now (judged over the group's
        current items and the user's latest events, as the model's answers are)."""
        excluding = request.exclude_seen and request.item_id is None
        filtering = request.filter_name is not None or bool(request.filter_values)
        if not (excluding or filtering):
            return items
        events = self.recommender.user_events(group, request.user_id)
        if excluding and events:
            seen = {e.item_id for e in events}
            items = [s for s in items if s.id not in seen]
        if not filtering:
            return items
        catalogue = self.rules.get(group, deployment.config.rules)  # every item of the group
        selection = self.recommender.select(
            group, catalogue, request.filter_name, request.filter_values,
            user_id=request.user_id, events=events, item_id=request.item_id,
            event_items=catalogue.items.indices([e.item_id for e in events]),
        )  # fmt: skip
        if selection is None:
            return items
        allowed = selection.permits([s.id for s in items])
        return [s for s, ok in zip(items, allowed, strict=True) if ok]


def merge_promoted(
    regular: Sequence[Scored], promoted: Sequence[Scored], promotion: str, k: int, seed: str
) -> list[dict[str, Any]]:
    """``k`` items: the promoted ones (their own order kept) at positions drawn from ``seed``
    (the recommendation id, so one answer is reproducible), the rest from ``regular`` in order,
    without duplicates. With too few promoted items, the regular ones fill in."""
    promoted_ids = {s.id for s in promoted}
    rest = [s for s in regular if s.id not in promoted_ids]
    total = min(k, len(promoted) + len(rest))
    places = set(random.Random(seed).sample(range(total), min(len(promoted), total)))
    merged: list[dict[str, Any]] = []
    promoted_iter, rest_iter = iter(promoted), iter(rest)
    for position in range(total):
        if position in places:
            merged.append(_entry(next(promoted_iter), promotionName=promotion))
        else:
            merged.append(_entry(next(rest_iter)))
    return merged


def _listed(results: Sequence[Scored]) -> list[dict[str, Any]]:
    return [_entry(s) for s in results]


def _entry(result: Scored, **extra: str) -> dict[str, Any]:
    """One item of an answer; ``reasons`` only when the request asked for explanations."""
    entry: dict[str, Any] = {"itemId": result.id, "score": result.score, **extra}
    if result.reasons is not None:
        entry["reasons"] = [reason.as_dict() for reason in result.reasons]
    return entry


def _check(request: CampaignRequest) -> None:
    if request.input_list is not None:  # a ranking answers its whole list
        check_item_list(request.input_list)
    else:
        check_k(request.k)
    if len(request.promotions) > MAX_PROMOTIONS:
        raise InvalidInput(f"promotions: at most {MAX_PROMOTIONS}, got {len(request.promotions)}")
    for promotion in request.promotions:
        if not 1 <= promotion.percent <= 100:
            raise InvalidInput(
                f"promotions[{promotion.name!r}].percentPromotedItems: expected 1 to 100, "
                f"got {promotion.percent}"
            )
    if request.input_list is not None and request.promotions:
        raise InvalidInput("promotions: not supported with inputList (personalized ranking)")
    if request.input_list is not None and request.item_id is not None:
        raise InvalidInput("give itemId or inputList, not both")


def _cache_key(name: str, version_id: str, deployment: Deployment, request: CampaignRequest) -> str:
    """Everything that changes an answer besides the user's events: a request with other filter
    values (or any other option) is a different entry, never a stale one."""
    body = {
        "campaign": name,
        "version": version_id,
        "deployed_at": deployment.record.updated_at,
        **{f.name: getattr(request, f.name) for f in dataclasses.fields(request)
           if f.name != "promotions"},
        "promotions": [dataclasses.asdict(p) for p in request.promotions],
    }  # fmt: skip
    encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def validate_deployment(store: Store, group: str, solution: str, deployed: str) -> None:
    """Raise NotFound/InvalidInput unless ``deployed`` ("latest" or a version id) can answer
    for ``solution``."""
    store.get_solution(group, solution)
    if deployed == LATEST:
        return
    version = store.get_solution_version(deployed)
    if version.group != group or version.solution != solution:
        raise NotFound(f"solution version {deployed!r} is not a version of {solution!r}")
    if version.status != "active":
        raise InvalidInput(f"solution version {deployed!r} is {version.status}, not active")
