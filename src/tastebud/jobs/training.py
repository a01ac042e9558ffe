"""Training jobs: a solution's data from the store -> a fitted model -> an immutable version.

A version's offline metrics come from the leave-last-out protocol (fit on all but each user's
last interaction, scored on it, full ranking); the deployed model is then fitted on everything.
Artifacts are written under a temporary name and renamed, so a version folder is whole or absent.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from threadpoolctl import threadpool_limits

from tastebud import __version__
from tastebud.embeddings.alignment import save_space
from tastebud.embeddings.lineage import space_for
from tastebud.errors import InvalidInput, TastebudError
from tastebud.ids import Vocabulary
from tastebud.recipes import TrainingData, get_recipe, parse_config
from tastebud.recipes.base import (
    FloatArray,
    IncrementalFit,
    Int64Array,
    IntArray,
    Model,
    Recipe,
    RecipeConfig,
    TrainingFeatureLookup,
    declared_features,
)
from tastebud.serving.versions import (
    LoadedVersion,
    load_version,
    save_version,
    version_folder,
    write_checksums,
)
from tastebud.store import SolutionRecord, SolutionVersionRecord, Store
from tastebud.store.base import VersionStatus
from tastebud.text.items import CACHE_FOLDER as TEXT_CACHE_FOLDER
from tastebud.text.items import item_texts
from tastebud.training import (
    SolutionDataConfig,
    impression_negatives,
    item_creation_times,
    item_feature_matrix,
    training_data_from_indexed,
)

_log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
# A new version's metrics -> why it must not go live (it is kept as "gated"), or None.
Gate = Callable[[Mapping[str, Any]], str | None]
MIN_INTERACTIONS = 2


class HpoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trials: int = Field(default=20, ge=1, le=500)


class SolutionSpec(BaseModel):
    """What a solution is: a recipe, its hyperparameters, which events count, HPO on/off."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recipe: str
    params: dict[str, Any] = Field(default_factory=dict)
    data: SolutionDataConfig = SolutionDataConfig()
    hpo: HpoConfig | None = None
    evaluate: bool = Field(default=True, description="Compute offline metrics per version.")

    @classmethod
    def parse(cls, body: dict[str, Any]) -> SolutionSpec:
        """Validate a solution body, its recipe name and its hyperparameters.

        Raises:
            InvalidInput: naming the field at fault.
        """
        try:
            spec = cls.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "solution"
            raise InvalidInput(f"solution.{where}: {first['msg']}") from None
        parse_config(get_recipe(spec.recipe), spec.params)
        return spec


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    metrics: dict[str, Any]
    params: dict[str, Any]
    snapshot: dict[str, Any]
    train_seconds: float
    incremental: dict[str, Any] | None = None  # the parent version and what the growth did


def load_training_data(
    store: Store,
    group: str,
    data_config: SolutionDataConfig,
    *,
    up_to_seq: int,
    text_cache: Path | None = None,
) -> tuple[TrainingData, Vocabulary, Vocabulary]:
    """The group's interactions (identified users, arrived by ``up_to_seq``) and item metadata
    as training arrays; the schema's textual item fields are embedded on demand, their vectors
    cached in ``text_cache``."""
    users = store.vocabulary(group, "user")
    items = store.vocabulary(group, "item")
    frame = store.read_interactions(group, up_to_seq=up_to_seq)
    if frame.height < MIN_INTERACTIONS:
        raise InvalidInput(
            f"group {group!r} has {frame.height} interactions with a known user; training needs "
            f"at least {MIN_INTERACTIONS} (import some first)"
        )
    item_frame = _items_frame(store, group)
    schema = store.get_schema(group, "items")
    categorical = (
        [name for name, kind in schema.extra_fields.items() if kind == "categorical"]
        if schema is not None
        else None
    )
    # declared textual fields that some item fills (an empty field is no column in the export)
    textual = [
        name for name, kind in (schema.extra_fields if schema is not None else {}).items()
        if kind == "textual" and item_frame is not None and name in item_frame.columns
    ]  # fmt: skip
    features, names = item_feature_matrix(item_frame, items, categorical)
    # Shown but never interacted with: a negative signal for the recipes that use it.
    negative_users, negative_items = impression_negatives(frame["impression"], frame, items)
    data = training_data_from_indexed(
        frame, n_users=len(users), n_items=len(items), config=data_config,
        item_features=features, feature_names=names,
        item_created=item_creation_times(item_frame, items),
        negative_users=negative_users, negative_items=negative_items,
    )  # fmt: skip
    texts = item_texts(item_frame, items, textual, text_cache)
    data = dataclasses.replace(data, item_texts=texts)
    return data, users, items


def _items_frame(store: Store, group: str) -> pl.DataFrame | None:
    chunks = list(store.export(group, "items"))
    if not chunks:
        return None
    frame = pl.concat(chunks, how="diagonal_relaxed")
    created = frame.get_column("CREATION_TIMESTAMP", default=None)
    if created is not None and created.null_count() == frame.height:
        frame = frame.drop("CREATION_TIMESTAMP")  # no item has one: recipes see None, not -1s
    return frame


def train_version(
    store: Store,
    solution: SolutionRecord,
    *,
    version_id: str,
    artifacts: Path,
    seed: int = 0,
    threads: int = 2,
    progress: ProgressFn | None = None,
    features: PointInTimeFeatures | None = None,
    up_to_seq: int | None = None,
    write: bool = True,
    parent: LoadedVersion | None = None,
) -> TrainingOutcome:
    """Fit ``solution`` on its group's data now and write the version's artifacts. A recipe
    that reads declared features (the ranker) reads them from ``features``, point in time.
    ``up_to_seq``: the events read (default: all now); ``write`` False: the fit only (the other
    ranks of a distributed fit, whose rank 0 writes). With ``parent`` (``train --incremental``)
    the model grows from the parent version's and trains on the events since its snapshot,
    without offline metrics (they take full fits)."""
    report = progress or (lambda fraction, message: None)
    spec = SolutionSpec.parse(dict(solution.body))
    recipe = get_recipe(spec.recipe)
    report(0.02, "reading data")
    # live updates continue from here
    last_seq = store.last_seq(solution.group) if up_to_seq is None else up_to_seq
    data, users, items = load_training_data(
        store, solution.group, spec.data, up_to_seq=last_seq,
        text_cache=artifacts / TEXT_CACHE_FOLDER,
    )  # fmt: skip
    params = dict(spec.params)
    if declared_features(parse_config(recipe, params)):
        if features is None:
            raise InvalidInput(f"solution {solution.name!r} reads declared features; train it "
                               "where the feature store runs (the engine)")  # fmt: skip
        data = dataclasses.replace(
            data, feature_lookup=_point_in_time(features, solution.group, users, items)
        )
    metrics: dict[str, Any] = {}
    lineage: dict[str, Any] = {}

    # Progress from the fit too: callers (a schedule's deadline) act on it while it runs.
    def fit_progress(fraction: float, message: str) -> None:
        report(0.75 + 0.2 * fraction, f"fit: {message}")

    with threadpool_limits(limits=threads):
        if (spec.evaluate or spec.hpo) and parent is None:
            metrics, params = _offline_metrics(data, spec, seed=seed, report=report)
        report(0.75, "final fit on all data" if parent is None else "incremental fit")
        started = time.perf_counter()
        if parent is None:
            model = recipe.fit(data, parse_config(recipe, params), seed=seed,
                               progress=fit_progress)  # fmt: skip
        else:
            model = grow_version(parent, recipe, data, items, parse_config(recipe, params),
                                 seed=seed, progress=fit_progress)  # fmt: skip
            grown = getattr(model, "training", {}).get("incremental", {})  # what the fit did
            lineage = {"parent": parent.id, **grown}
        seconds = time.perf_counter() - started
    snapshot = {
        "interactions": data.size, "users": data.n_users, "items": data.n_items,
        "max_timestamp": int(data.timestamps.max()) if data.size else None,
        "last_seq": last_seq,
    }  # fmt: skip
    meta = {
        "solution": solution.name, "group": solution.group, "params": params,
        "data": spec.data.model_dump(), "snapshot": snapshot, "metrics": metrics,
        "train_seconds": round(seconds, 3), "feature_names": list(data.feature_names),
        "tastebud_version": __version__, "seed": seed,
    }  # fmt: skip
    if lineage:
        meta["incremental"] = lineage
    if not write:
        return TrainingOutcome(metrics, params, snapshot, round(seconds, 3), lineage or None)
    report(0.95, "writing artifacts")
    # aligned to the previous version's space, so stored vectors stay usable (issue 17)
    space = space_for(
        store, artifacts, group=solution.group, solution=solution.name, version_id=version_id,
        recipe=spec.recipe, model=model, items=items,
    )  # fmt: skip

    def save(folder: Path) -> None:
        save_version(
            folder, recipe=spec.recipe, meta=meta, model=model, users=users, items=items,
            popularity=data.item_counts(), item_features=data.item_features,
        )  # fmt: skip
        if space is not None:
            save_space(folder, space)
            write_checksums(folder)

    _write_atomically(version_folder(artifacts, version_id), save)
    _log.info("version trained id=%s recipe=%s seconds=%.2f", version_id, spec.recipe, seconds)
    return TrainingOutcome(metrics, params, snapshot, round(seconds, 3), lineage or None)


def grow_version(
    parent: LoadedVersion, recipe: Recipe, data: TrainingData, items: Vocabulary,
    config: RecipeConfig, *, seed: int, progress: ProgressFn,
) -> Model:  # fmt: skip
    """``parent``'s model grown to ``data`` (items matched by id) and trained on the events
    after its snapshot's newest one.

    Raises:
        InvalidInput: the recipe cannot grow a model, or the parent is another recipe's.
    """
    if not isinstance(recipe, IncrementalFit) or parent.recipe != recipe.name:
        raise InvalidInput(
            f"recipe {recipe.name!r} cannot train incrementally from version {parent.id} "
            f"({parent.recipe}); only sequential can: train a full version"
        )
    newest = (parent.meta.get("snapshot") or {}).get("max_timestamp")
    previous_items = parent.items.indices(i or "" for i in items.ids(range(len(items))))
    names = parent.meta.get("feature_names")
    return recipe.fit_incremental(
        parent.model, data, config, since=-(2**62) if newest is None else int(newest) + 1,
        previous_items=previous_items, seed=seed, progress=progress,
        previous_feature_names=None if names is None else tuple(names),
    )  # fmt: skip


class PointInTimeFeatures(Protocol):
    """The feature store's values as of given times (``features/``)."""

    def point_in_time(
        self, group: str, names: Sequence[str], *, user_ids: Sequence[str | None],
        item_ids: Sequence[str], times: Sequence[int],
    ) -> npt.NDArray[np.float32]: ...  # fmt: skip


def _point_in_time(
    features: PointInTimeFeatures, group: str, users: Vocabulary, items: Vocabulary
) -> TrainingFeatureLookup:
    """The training data's lookup: dense indexes to ids, then the store's frames."""

    def lookup(
        user_rows: IntArray, item_rows: IntArray, times: Int64Array, names: tuple[str, ...]
    ) -> FloatArray:
        values = features.point_in_time(
            group, names, user_ids=users.ids(user_rows.tolist()),
            item_ids=[i or "" for i in items.ids(item_rows.tolist())], times=times.tolist(),
        )  # fmt: skip
        return np.asarray(values, dtype=np.float32)

    return lookup


def _offline_metrics(
    data: TrainingData, spec: SolutionSpec, *, seed: int, report: ProgressFn
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Leave-last-out metrics (and HPO on the validation item); ``({}, params)`` when no user
    has the three interactions the protocol needs."""
    from tastebud.evaluation import run_evaluation

    try:
        result = run_evaluation(
            data, spec.recipe, dict(spec.params), protocol="leave-last-out", seed=seed,
            tune_trials=spec.hpo.trials if spec.hpo else 0,
            progress=lambda fraction, message: report(0.05 + 0.7 * fraction, message),
        )  # fmt: skip
    except InvalidInput as error:
        if "at least 3 interactions" not in error.message:
            raise
        _log.info("no offline metrics: %s", error.message)
        return {}, dict(spec.params)
    metrics = {k: v for k, v in result.items() if "@" in k}
    metrics |= {"users": result["users"], "protocol": "leave-last-out",
                "validation": result["validation"]}  # fmt: skip
    return metrics, dict(result["params"])


def _write_atomically(folder: Path, write: Callable[[Path], None]) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write(partial)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


@dataclass(frozen=True, slots=True)
class Growth:
    """What an incremental training grows from: the ``parent`` version, or None with the
    ``fallback`` reason for a full fit instead."""

    parent: LoadedVersion | None
    fallback: str | None = None


class VersionTrainer:
    """A solution version from creation to ``active`` (or ``failed``, or ``gated``): the
    record-keeping around :func:`train_version` that ``tastebud train``, background training
    and schedules share."""

    def __init__(
        self, store: Store, artifacts: Path, *, threads: int = 2,
        features: PointInTimeFeatures | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.artifacts = artifacts
        self.threads = threads
        self.features = features

    def growth(self, group: str, solution: str, *, full_fallback: bool = False) -> Growth:
        """The newest active version of ``solution``, which an incremental training grows.

        Raises:
            InvalidInput: there is none (or its recipe cannot grow) and not ``full_fallback``.
        """
        record = self.store.get_solution(group, solution)
        active = next((v for v in self.store.list_solution_versions(group, solution)
                       if v.status == "active"), None)  # fmt: skip
        reason = None
        if not isinstance(get_recipe(record.recipe), IncrementalFit):
            reason = f"recipe {record.recipe!r} cannot train incrementally (sequential can)"
        elif active is None:
            reason = f"solution {solution!r} has no active version to grow from"
        else:
            parent = load_version(version_folder(self.artifacts, active.id), active.id)
            if parent.recipe == record.recipe:
                return Growth(parent)
            reason = f"its active version {active.id} is a {parent.recipe} model"
        if not full_fallback:
            raise InvalidInput(f"incremental training: {reason}; train a full version "
                               "(or allow a full fit as the fallback)")  # fmt: skip
        _log.info("incremental training falls back to a full fit solution=%s reason=%r",
                  solution, reason)  # fmt: skip
        return Growth(None, reason)

    def create(self, group: str, solution: str) -> SolutionVersionRecord:
        """A new version (status ``training``) of a valid solution; NotFound when it has gone."""
        record = self.store.get_solution(group, solution)
        SolutionSpec.parse(dict(record.body))
        now = time.time()
        version = SolutionVersionRecord(
            id=f"sv-{uuid.uuid4().hex[:16]}", group=group, solution=solution, status="training",
            body={"recipe": record.recipe, "solution": dict(record.body)},
            created_at=now, updated_at=now,
        )  # fmt: skip
        self.store.save_solution_version(version)
        return version

    def train(
        self,
        version: SolutionVersionRecord,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
        job_id: str | None = None,
        gate: Gate | None = None,
        up_to_seq: int | None = None,
        growth: Growth | None = None,
    ) -> SolutionVersionRecord:
        """Train ``version`` in this thread (on the events up to ``up_to_seq``, default all;
        incrementally with ``growth``, see :meth:`growth`). It ends ``active`` (the newest
        active version answers requests and ``latest`` campaigns), ``gated`` when ``gate``
        names a reason, or ``failed`` (with the error, which is raised again)."""
        solution = self.store.get_solution(version.group, version.solution)
        body = dict(version.body) | ({"job": job_id} if job_id else {})
        if growth is not None and growth.fallback is not None:
            body["incremental"] = {"fallback": growth.fallback}
        try:
            outcome = train_version(
                self.store, solution, version_id=version.id, artifacts=self.artifacts,
                seed=seed, threads=self.threads, progress=progress, features=self.features,
                up_to_seq=up_to_seq,
                parent=None if growth is None else growth.parent,
            )  # fmt: skip
        except Exception as error:
            message = error.message if isinstance(error, TastebudError) else f"internal: {error}"
            self._save(version, "failed", body | {"error": message})
            raise
        body |= {"metrics": outcome.metrics, "params": outcome.params,
                 "snapshot": outcome.snapshot, "train_seconds": outcome.train_seconds}  # fmt: skip
        if outcome.incremental is not None:
            body["incremental"] = outcome.incremental
        reason = gate(outcome.metrics) if gate is not None else None
        if reason is not None:
            _log.warning("version gated id=%s solution=%s reason=%r", version.id,
                         version.solution, reason)  # fmt: skip
            return self._save(version, "gated", body | {"gated": reason})
        return self._save(version, "active", body)

    def train_new(
        self,
        group: str,
        solution: str,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
        job_id: str | None = None,
        gate: Gate | None = None,
        incremental: bool = False,
        full_fallback: bool = False,
    ) -> SolutionVersionRecord:
        """:meth:`create` then :meth:`train`; ``incremental`` grows the active version
        (:meth:`growth`), refused before any version is created when there is none."""
        growth = self.growth(group, solution, full_fallback=full_fallback) if incremental else None
        version = self.create(group, solution)
        return self.train(version, seed=seed, progress=progress, job_id=job_id, gate=gate,
                          growth=growth)  # fmt: skip

    def _save(
        self, version: SolutionVersionRecord, status: VersionStatus, body: dict[str, Any]
    ) -> SolutionVersionRecord:
        done = dataclasses.replace(version, status=status, body=body, updated_at=time.time())
        self.store.save_solution_version(done)
        return done
