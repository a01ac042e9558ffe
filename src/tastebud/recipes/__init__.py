"""Recipes: model families that fit a :class:`Model` from :class:`TrainingData`.

The registry imports a recipe's module only when it is asked for, so the CLI starts fast and
a recipe's heavy dependency (``implicit``, ``torch``) loads only where it is used.
"""

from __future__ import annotations

import importlib

from tastebud.errors import InvalidInput
from tastebud.recipes.base import (
    Embeddings,
    HistoryContributions,
    HistoryWindow,
    ItemSimilarity,
    LiveUpdates,
    Model,
    Query,
    Recipe,
    RecipeConfig,
    ScoresHorizon,
    ScoresItems,
    TrainingData,
    UserAffinity,
    UserSimilarity,
    history_window,
)

__all__ = [
    "RECIPES",
    "Embeddings",
    "HistoryContributions",
    "HistoryWindow",
    "ItemSimilarity",
    "LiveUpdates",
    "Model",
    "Query",
    "Recipe",
    "RecipeConfig",
    "ScoresHorizon",
    "ScoresItems",
    "TrainingData",
    "UserAffinity",
    "UserSimilarity",
    "get_recipe",
    "history_window",
    "parse_config",
]

# name -> "module:class", relative to this package
RECIPES: dict[str, str] = {
    "popularity-count": "popularity:PopularityCount",
    "trending-now": "trending:TrendingNow",
    "similar-items": "similar_items:SimilarItems",
    "user-personalization": "user_personalization:UserPersonalization",
    "personalized-ranking": "personalized_ranking:PersonalizedRanking",
    "item-affinity": "item_affinity:ItemAffinity",
    "similar-users": "similar_users:SimilarUsers",
    "sequential": "sequential:Sequential",
    "ranker": "ranker:Ranker",
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        InvalidInput: no such recipe (the message lists the known ones).
    """
    target = RECIPES.get(name)
    if target is None:
        known = ", ".join(sorted(RECIPES))
        raise InvalidInput(f"unknown recipe {name!r}; known recipes: {known}")
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    recipe: Recipe = getattr(module, class_name)()
    return recipe


def parse_config(recipe: Recipe, params: dict[str, object]) -> RecipeConfig:
    """Validate hyperparameters for ``recipe``; strings such as ``"128"`` are coerced.

    Raises:
        InvalidInput: unknown key or bad value, naming the recipe, the key and the value.
    """
    from pydantic import ValidationError

    try:
        return recipe.config_type.model_validate(params)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] != "extra_forbidden" else "")
            for e in error.errors()
        )
        raise InvalidInput(f"recipe {recipe.name!r}: {problems}") from None
