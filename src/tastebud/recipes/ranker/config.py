"""The ``ranker`` recipe's hyperparameters: which recipes it stacks, how many candidates each
gives, how labels are graded, and LightGBM's own knobs."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tastebud.errors import InvalidInput
from tastebud.recipes.base import RecipeConfig


class BaseSpec(RecipeConfig):
    """One stacked recipe: its registry name and its hyperparameters."""

    recipe: str = Field(description="a recipe name (e.g. sequential, user-personalization)")
    params: dict[str, Any] = Field(default_factory=dict, description="the recipe's config")

    @model_validator(mode="after")
    def _known_recipe(self) -> BaseSpec:
        from tastebud.recipes import get_recipe, parse_config

        if self.recipe == "ranker":
            raise ValueError("a ranker cannot stack another ranker")
        try:
            parse_config(get_recipe(self.recipe), dict(self.params))
        except InvalidInput as error:  # pydantic reports ValueErrors with the field's path
            raise ValueError(str(error)) from None
        return self


# The default stack (docs/ranking.md): the transformer (best alone on ml-1m-seq), the order-aware
# item-to-item follow-ups (second best, cheap), EASE from the whole history, and popularity.
DEFAULT_BASES: dict[str, dict[str, Any]] = {
    "seq": {"recipe": "sequential"},
    "next": {"recipe": "similar-items"},
    "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
    "pop": {"recipe": "popularity-count"},
}


def _default_bases() -> dict[str, BaseSpec]:
    return {name: BaseSpec.model_validate(spec) for name, spec in DEFAULT_BASES.items()}


class RankerConfig(RecipeConfig):
    """Hyperparameters of ``ranker``."""

    bases: dict[str, BaseSpec] = Field(
        default_factory=_default_bases,
        description="name -> {recipe, params}: the recipes whose top items are the candidates "
        "and whose scores and ranks are features; the first one orders the non-candidates",
    )
    candidates: int = Field(
        default=200, ge=1, le=5_000, description="top-N of each base; the candidates are the union"
    )
    refit_bases: bool = Field(
        default=False,
        description="refit the bases on all the data after training the trees (the trees then "
        "see fresher bases than they learned from; costs a second fit of every base)",
    )
    exclude_seen: bool = Field(
        default=True, description="a user's history never becomes a candidate (off: repeats)"
    )
    features: tuple[str, ...] = Field(
        default=(), description="declared feature names read through the feature lookups"
    )
    grade_by: Literal["event-type", "value"] = Field(
        default="event-type",
        description="a label's grade: grades[EVENT_TYPE] (default 1), or its EVENT_VALUE rounded",
    )
    grades: dict[str, int] = Field(
        default_factory=dict, description="event type -> label grade (0..30); unlisted types: 1"
    )
    impression_negatives: bool = Field(
        default=True, description="add a user's impressions (shown, not chosen) as negatives"
    )
    popularity_windows_days: tuple[float, ...] = Field(
        default=(1.0, 7.0, 30.0), description="recent-popularity windows, in days before a query"
    )
    # Validation (benchmarks/ranker_quality.py --tune, docs/benchmarks.md): on ml-1m-seq every
    # setting lands within 0.0012 NDCG@10; on ml-100k 7 leaves beat 15 by ~0.015: 7 comes first.
    num_leaves: int = Field(default=7, ge=2, le=1_024, description="LightGBM leaves per tree")
    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0, description="shrinkage")
    # At most 100 trees: LightGBM predicts 1,000 rows in ~2 ms with 100 trees of 15 leaves on a
    # quiet core (the target: 5 ms); early stopping kept 99 (ml-1m-seq) and 16 (ml-100k).
    n_estimators: int = Field(default=100, ge=1, le=10_000, description="most boosting rounds")
    min_data_in_leaf: int = Field(default=200, ge=1, le=1_000_000, description="rows per leaf")
    feature_fraction: float = Field(default=0.9, gt=0.0, le=1.0, description="columns per tree")
    early_stopping_rounds: int = Field(
        default=50, ge=0, le=10_000,
        description="stop after this many rounds without NDCG gain on held-out users (0: off)",
    )  # fmt: skip
    validation_share: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="users held out for early stopping"
    )
    threads: int = Field(default=2, ge=1, le=256, description="LightGBM training threads")

    @field_validator("bases", "grades", "features", "popularity_windows_days", mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        """``-p bases='{"seq": {"recipe": "sequential"}}'`` on the command line: JSON text;
        ``-p features=a,b``: a comma-separated list."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON: {error.msg} at {error.pos}") from None
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("bases")
    @classmethod
    def _some_bases(cls, bases: dict[str, BaseSpec]) -> dict[str, BaseSpec]:
        if not bases:
            raise ValueError("name at least one base recipe")
        for name in bases:
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"base name {name!r}: letters, digits, - and _ only")
        return bases

    @field_validator("grades")
    @classmethod
    def _grades_in_range(cls, grades: dict[str, int]) -> dict[str, int]:
        bad = {t: g for t, g in grades.items() if not 0 <= g <= 30}
        if bad:
            raise ValueError(f"grades must lie in 0..30 (LightGBM's label gains), got {bad}")
        return grades

    @field_validator("features")
    @classmethod
    def _distinct_features(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(names)) != len(names) or any(not n for n in names):
            raise ValueError("feature names must be distinct and non-empty")
        return names

    @field_validator("popularity_windows_days")
    @classmethod
    def _positive_windows(cls, days: tuple[float, ...]) -> tuple[float, ...]:
        if any(d <= 0 for d in days):
            raise ValueError("popularity windows must be positive numbers of days")
        return days
