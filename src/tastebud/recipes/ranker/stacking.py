"""Stacking without leakage: the held-out labels, the bases fitted on what precedes them, the
training queries, and LambdaMART itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tastebud.errors import InvalidInput
from tastebud.recipes.base import FloatArray, IntArray, Model, ProgressFn, Query, TrainingData
from tastebud.recipes.ranker.config import RankerConfig

if TYPE_CHECKING:
    import lightgbm


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Each user's last interaction (users with at least two): ``mask`` over the data, and
    ``rows`` (its row numbers, by ascending user)."""

    mask: npt.NDArray[np.bool_]
    rows: npt.NDArray[np.intp]


def hold_out_last(data: TrainingData) -> HeldOut:
    """The label of each user with an interaction before it: the latest (ties: the later row).

    Raises:
        InvalidInput: no user has two interactions.
    """
    order = np.lexsort((np.arange(data.size), data.timestamps, data.users))
    users = data.users[order]
    last = np.ones(len(order), dtype=np.bool_)
    last[:-1] = users[:-1] != users[1:]
    counts = np.bincount(data.users, minlength=data.n_users)
    rows = order[last & (counts[users] >= 2)]
    if not len(rows):
        raise InvalidInput("ranker: no user has two interactions to learn an order from")
    mask = np.zeros(data.size, dtype=np.bool_)
    mask[rows] = True
    return HeldOut(mask, rows)


def fit_bases(
    data: TrainingData, settings: RankerConfig, *, seed: int, progress: ProgressFn | None = None
) -> dict[str, Model]:
    """Fit every base recipe on ``data`` with its own config and this seed."""
    from tastebud.recipes import get_recipe, parse_config

    fitted: dict[str, Model] = {}
    names = list(settings.bases)
    for position, name in enumerate(names):
        spec = settings.bases[name]
        recipe = get_recipe(spec.recipe)
        config = parse_config(recipe, dict(spec.params))
        part = _part(progress, position, len(names), name)
        fitted[name] = recipe.fit(data, config, seed=seed, progress=part)
    return fitted


def _part(progress: ProgressFn | None, position: int, count: int, name: str) -> ProgressFn | None:
    if progress is None:
        return None
    report = progress

    def scaled(fraction: float, message: str) -> None:
        report((position + min(max(fraction, 0.0), 1.0)) / count, f"base {name}: {message}")

    return scaled


def training_query(
    rest: TrainingData, data: TrainingData, label_rows: npt.NDArray[np.intp]
) -> tuple[Query, IntArray]:
    """One query per label (ascending user): the user's events in ``rest`` (oldest first, with
    their times, types and values), asked at the label's time in the label's context."""
    users = data.users[label_rows].astype(np.int32)
    order = np.lexsort((np.arange(rest.size), rest.timestamps, rest.users))
    order = order[np.isin(rest.users[order], users)]
    counts = np.bincount(rest.users[order], minlength=data.n_users)[users]
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    query = Query(
        users=users,
        history_indptr=indptr,
        history_items=rest.items[order].astype(np.int32),
        times=data.timestamps[label_rows].astype(np.int64),
        history_timestamps=rest.timestamps[order].astype(np.int64),
        history_event_types=None if rest.event_types is None else rest.event_types[order],
        event_type_names=rest.event_type_names,
        history_values=None if rest.values is None else rest.values[order],
        contexts=_contexts(data, label_rows),
    )
    return query, users


def _contexts(data: TrainingData, rows: npt.NDArray[np.intp]) -> tuple[dict[str, str], ...] | None:
    """Each label's request context (``{"DEVICE": "tv"}``), as a request would carry it."""
    if data.contexts is None:
        return None
    values = [name.split("=", 1)[1] for name in data.context_names]
    return tuple(
        {field: values[code] for field, code in zip(data.context_fields, codes, strict=True)
         if code >= 0}
        for codes in data.contexts[rows].tolist()
    )  # fmt: skip


def label_grades(
    data: TrainingData, rows: npt.NDArray[np.intp], settings: RankerConfig
) -> IntArray:
    """Each label's grade: ``grades[event type]`` (unlisted or untyped: 1), or its value
    rounded into 0..30 (no value: 1)."""
    if settings.grade_by == "value":
        if data.values is None:
            return np.ones(len(rows), dtype=np.int32)
        values = data.values[rows]
        rounded = np.clip(np.rint(np.nan_to_num(values, nan=1.0)), 0, 30)
        return rounded.astype(np.int32)
    if data.event_types is None or not settings.grades:
        return np.ones(len(rows), dtype=np.int32)
    by_code = np.array([settings.grades.get(name, 1) for name in data.event_type_names] + [1])
    codes = data.event_types[rows]  # -1 (no type) reads the trailing 1
    return by_code[codes].astype(np.int32)


@dataclass
class Groups:
    """LightGBM's training rows: one group per user whose label is among its candidates."""

    features: FloatArray
    labels: IntArray
    sizes: IntArray
    users: int  # label users asked (with or without their label among the candidates)
    mean_candidates: float

    @property
    def n_groups(self) -> int:
        return len(self.sizes)

    @property
    def n_pairs(self) -> int:
        return len(self.labels)

    def summary(self) -> dict[str, float]:
        """Sizes, and the recall of the candidates: labels found / label users."""
        return {
            "label_users": self.users, "groups": self.n_groups, "pairs": self.n_pairs,
            "mean_candidates": round(self.mean_candidates, 1),
            "candidate_recall": round(self.n_groups / max(1, self.users), 4),
        }  # fmt: skip

    @staticmethod
    def collector() -> GroupCollector:
        return GroupCollector()


@dataclass
class GroupCollector:
    """Accumulates batches of pairs (grouped by query row) into :class:`Groups`."""

    rows: list[IntArray] = field(default_factory=list)
    features: list[FloatArray] = field(default_factory=list)
    labels: list[IntArray] = field(default_factory=list)
    candidates: list[npt.NDArray[np.int64]] = field(default_factory=list)

    def add(self, rows: IntArray, features: FloatArray, labels: IntArray, *,
            candidates: npt.NDArray[np.int64]) -> None:  # fmt: skip
        self.rows.append(rows)
        self.features.append(features)
        self.labels.append(labels)
        self.candidates.append(candidates)

    def done(self) -> Groups:
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int32)
        _, sizes = np.unique(rows, return_counts=True)  # rows ascend, so groups are contiguous
        counts = np.concatenate(self.candidates) if self.candidates else np.zeros(0)
        width = self.features[0].shape[1] if self.features else 0
        return Groups(
            features=np.vstack(self.features) if self.features else np.zeros((0, width), "f4"),
            labels=np.concatenate(self.labels) if self.labels else np.zeros(0, np.int32),
            sizes=sizes.astype(np.int32), users=len(counts),
            mean_candidates=float(counts.mean()) if len(counts) else 0.0,
        )  # fmt: skip


def train_trees(
    groups: Groups, names: list[str], settings: RankerConfig, *, seed: int
) -> tuple[lightgbm.Booster, dict[str, Any]]:
    """LambdaMART on ``groups``; a ``validation_share`` of the groups stops it early.

    Raises:
        InvalidInput: no group has its label among the candidates.
    """
    import lightgbm

    if groups.n_groups == 0:
        raise InvalidInput(
            "ranker: no user's held-out item is among its bases' candidates; raise "
            "`candidates` or check the bases"
        )
    params = {
        "objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
        "num_leaves": settings.num_leaves, "learning_rate": settings.learning_rate,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": settings.feature_fraction, "num_threads": settings.threads,
        "seed": seed, "deterministic": True, "force_row_wise": True, "verbose": -1,
    }  # fmt: skip
    train_part, valid_part = _split_groups(groups, settings, seed)
    train_set = _dataset(groups, train_part, names)
    callbacks: list[Callable[..., None]] = []
    valid_sets = []
    if valid_part is not None:
        valid_sets = [_dataset(groups, valid_part, names, reference=train_set)]
        if settings.early_stopping_rounds:
            callbacks.append(lightgbm.early_stopping(settings.early_stopping_rounds, verbose=False))
    booster = lightgbm.train(
        params, train_set, num_boost_round=settings.n_estimators, valid_sets=valid_sets,
        callbacks=callbacks,
    )  # fmt: skip
    best = booster.best_iteration or booster.current_iteration()
    info: dict[str, Any] = {"trees": best, "rounds": booster.current_iteration()}
    if valid_part is not None and booster.best_score:
        info["validation_ndcg@10"] = round(float(booster.best_score["valid_0"]["ndcg@10"]), 4)
    kept = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
    return kept, info


def _split_groups(
    groups: Groups, settings: RankerConfig, seed: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_] | None]:
    """Group masks: the groups that train, and those held out for early stopping (None)."""
    n = groups.n_groups
    held = round(settings.validation_share * n)
    if held < 1 or n - held < 1:
        return np.ones(n, dtype=np.bool_), None
    rng = np.random.default_rng(seed)
    valid = np.zeros(n, dtype=np.bool_)
    valid[rng.choice(n, size=held, replace=False)] = True
    return ~valid, valid


def _dataset(
    groups: Groups, chosen: npt.NDArray[np.bool_], names: list[str],
    reference: lightgbm.Dataset | None = None,
) -> lightgbm.Dataset:  # fmt: skip
    import lightgbm

    pair_group = np.repeat(np.arange(groups.n_groups), groups.sizes)
    rows = chosen[pair_group]
    return lightgbm.Dataset(
        groups.features[rows], label=groups.labels[rows], group=groups.sizes[chosen],
        feature_name=[_safe(name) for name in names], reference=reference, free_raw_data=True,
    )  # fmt: skip


def _safe(name: str) -> str:
    """A column name LightGBM accepts (no JSON punctuation); model.json keeps the real one."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
