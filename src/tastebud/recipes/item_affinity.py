"""``item-affinity``: which users will want this item (the users behind a segment).

A ``user-personalization`` model (same configuration) read the other way round: for each item,
the affinity of every known user. ALS and BPR: ``U · Vᵀ`` with the trained user vectors; EASE:
``X · B[:, item]`` over the training matrix, which the model keeps for that. A segment for an
item attribute value ("GENRES=Comedy") combines the rows of the items that carry it; users who
already interacted with an item are *not* removed here (segment jobs decide).
``score(query)`` is the user model's, so this is a :class:`Model` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from tastebud.recipes.base import (
    FloatArray,
    IntArray,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    load_arrays,
    save_arrays,
)
from tastebud.recipes.user_personalization import (
    UserPersonalizationConfig,
    UserPersonalizationModel,
    fit_user_model,
    user_model_space,
)

if TYPE_CHECKING:
    import optuna

# the EASE model's training matrix, kept beside the user model's arrays
_INTERACTIONS = "interactions"


class ItemAffinityModel:
    """A user model plus what it takes to score every user for an item."""

    history_window = None  # as its user model

    def __init__(self, user_model: UserPersonalizationModel, interactions: sp.csr_matrix) -> None:
        self.user_model = user_model
        self.interactions = interactions
        self.n_users = user_model.n_users
        self.n_items = user_model.n_items

    def users_for_items(self, items: IntArray) -> FloatArray:
        """(len(items) x n_users) float32 affinity of every known user to each item.

        Items the model never saw (index outside ``0..n_items-1``) get a row of zeros.
        """
        items = np.asarray(items, dtype=np.int64)
        known = (items >= 0) & (items < self.n_items)
        columns = np.where(known, items, 0)
        arrays = self.user_model.arrays
        if self.user_model.algorithm == "ease":
            affinity = np.asarray(self.interactions @ arrays["weights"][:, columns]).T
        else:
            affinity = arrays["item_factors"][columns] @ arrays["user_factors"].T
        affinity = np.asarray(affinity, dtype=np.float32)
        affinity[~known] = 0.0
        return affinity

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items): the user model's scores."""
        return self.user_model.score(query)

    def history_contributions(self, query: Query, items: IntArray) -> tuple[IntArray, FloatArray]:
        """The user model's (explanations)."""
        return self.user_model.history_contributions(query, items)

    def item_embeddings(self) -> FloatArray | None:
        """The user model's (embeddings)."""
        return self.user_model.item_embeddings()

    def user_embeddings(self, query: Query) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """The user model's (embeddings)."""
        return self.user_model.user_embeddings(query)

    def save(self, folder: Path) -> None:
        arrays = {**self.user_model.arrays, _INTERACTIONS: self.interactions}
        meta = {
            "recipe": ItemAffinity.name,
            "algorithm": self.user_model.algorithm,
            "config": self.user_model.config.model_dump(),
        }
        save_arrays(folder, meta, arrays)


class ItemAffinity:
    """The ``item-affinity`` recipe."""

    name: ClassVar[str] = "item-affinity"
    config_type: ClassVar[type[RecipeConfig]] = UserPersonalizationConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> ItemAffinityModel:
        """Fit the configured user model; EASE also keeps the training matrix.

        Raises:
            InvalidInput: EASE asked for on more than 40,000 items.
        """
        settings = UserPersonalizationConfig.model_validate(config.model_dump())
        user_model = fit_user_model(data, settings, seed=seed, progress=progress, recipe=self.name)
        if user_model.algorithm == "ease":
            interactions = data.user_item_matrix()
        else:  # ALS and BPR answer from their user vectors
            interactions = sp.csr_matrix((data.n_users, data.n_items), dtype=np.float32)
        return ItemAffinityModel(user_model, interactions)

    def load(self, folder: Path) -> ItemAffinityModel:
        """Read a model written by :meth:`ItemAffinityModel.save`."""
        meta, arrays = load_arrays(folder)
        interactions: Any = arrays.pop(_INTERACTIONS)
        config = UserPersonalizationConfig(**meta["config"])
        user_model = UserPersonalizationModel(config, meta["algorithm"], arrays, recipe=self.name)
        return ItemAffinityModel(user_model, interactions)

    def search_space(self, trial: optuna.Trial) -> dict[str, object]:
        """Optuna search space: the same as ``user-personalization``'s."""
        return user_model_space(trial)
