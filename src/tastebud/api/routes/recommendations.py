"""Answers from trained versions: items for a user, ranking, similar items and users, segments.

Readable with an ``admin`` or ``recommend`` token; an ingest-only token gets 403.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_reader
from tastebud.api.models import (
    FilteredIn,
    ItemsAnswer,
    RankIn,
    ReasonOut,
    RecommendIn,
    ScoredItem,
    SimilarItemsIn,
    SimilarUsersIn,
    TargetIn,
    UsersAnswer,
    UsersForItemIn,
)
from tastebud.serving import Answer, Scored, VersionRef
from tastebud.serving.service import FilterValues

router = APIRouter(
    prefix="/v1/dataset-groups/{group}",
    tags=["recommendations"],
    dependencies=[Depends(require_reader)],
)


def items_answer(answer: Answer) -> ItemsAnswer:
    out: ItemsAnswer = {
        "recommendationId": answer.recommendation_id,
        "solutionVersionId": answer.version_id,
        "itemList": [_item(r) for r in answer.results],
    }
    if answer.intent is not None:  # asked for (includeIntent)
        out["intent"] = answer.intent
    return out


def _item(result: Scored) -> ScoredItem:
    item: ScoredItem = {"itemId": result.id, "score": result.score}
    if result.reasons is not None:  # asked for (explain)
        item["reasons"] = [cast(ReasonOut, reason.as_dict()) for reason in result.reasons]
    return item


def users_answer(answer: Answer) -> UsersAnswer:
    return {
        "recommendationId": answer.recommendation_id,
        "solutionVersionId": answer.version_id,
        "userList": [{"userId": r.id, "score": r.score} for r in answer.results],
    }


def _ref(body: TargetIn) -> VersionRef:
    return {"solution": body.solution, "version_id": body.solution_version_id}


def _filter(body: FilteredIn) -> tuple[str | None, FilterValues | None]:
    return body.filter, body.filter_values


@router.post("/recommendations")
def recommend(group: str, body: RecommendIn, engine: EngineDep) -> ItemsAnswer:
    """Items for a user, from the user's latest events: one click changes the next answer.
    ``filterName`` applies a filter of the group before the top results are taken; ``horizon``
    ranks for the next few actions (a version that learned them)."""
    name, values = _filter(body)
    answer = engine.recommender.recommend(
        group, _ref(body), user_id=body.user_id, k=body.num_results,
        exclude_seen=body.exclude_seen, filter_name=name, filter_values=values,
        context=body.context, explain=body.explain, horizon=body.horizon,
        include_intent=body.include_intent,
    )  # fmt: skip
    return items_answer(answer)


@router.post("/personalized-ranking")
def rank(group: str, body: RankIn, engine: EngineDep) -> ItemsAnswer:
    """``inputList`` ordered for the user; items the model does not know come last, unscored.
    Items the filter (``filterName``) does not allow are dropped from the list."""
    name, values = _filter(body)
    answer = engine.recommender.rank(
        group, _ref(body), user_id=body.user_id, item_ids=body.input_list,
        filter_name=name, filter_values=values, context=body.context, explain=body.explain,
    )  # fmt: skip
    return items_answer(answer)


@router.post("/similar-items")
def similar_items(group: str, body: SimilarItemsIn, engine: EngineDep) -> ItemsAnswer:
    """Items like ``itemId``; a filter may compare with it as ``CurrentItem``."""
    name, values = _filter(body)
    answer = engine.recommender.similar_items(
        group, _ref(body), item_id=body.item_id, k=body.num_results, user_id=body.user_id,
        filter_name=name, filter_values=values,
    )  # fmt: skip
    return items_answer(answer)


@router.post("/similar-users")
def similar_users(group: str, body: SimilarUsersIn, engine: EngineDep) -> UsersAnswer:
    return users_answer(
        engine.recommender.similar_users(
            group, _ref(body), user_id=body.user_id, k=body.num_results
        )
    )


@router.post("/users-for-item")
def users_for_item(group: str, body: UsersForItemIn, engine: EngineDep) -> UsersAnswer:
    """A segment: the users most likely to want an item, or any item with an attribute value,
    limited by a ``UserID`` filter (``filterName``)."""
    name, values = _filter(body)
    answer = engine.recommender.users_for_item(
        group, _ref(body), item_id=body.item_id, attribute=body.attribute, k=body.num_results,
        filter_name=name, filter_values=values,
    )  # fmt: skip
    return users_answer(answer)
