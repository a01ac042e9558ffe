"""Stable embedding spaces across solution versions (issue 17, part 5).

Two trainings of the same model give vectors in unrelated coordinates, even on the same data: any
rotation of both the item and the user vectors leaves every score unchanged. A downstream system
that stored last week's vectors (a similarity index, a classifier's features) would have to
recompute all of them after each retrain. So each new version is rotated into the previous
version's space: the orthogonal matrix ``R`` minimising ``‖X_new R - X_old‖`` over the items both
versions know (orthogonal Procrustes, Schönemann 1966) is applied to its item *and* user vectors.
``R`` is orthogonal, so ``(u R)·(i R) = u·i``: dot products, scores and recommendations stay
exactly what the model computes; only the coordinates move.

Aligned versions share a *space id*. A version starts a new space when there is no previous
version to align to, the dimensions or recipe differ, or too few items are shared for the
rotation to be pinned down (fewer than the dimensions, or :data:`MIN_SHARED_ITEMS`).

The rotation is stored beside the version's artifacts (``embeddings.json`` and
``embeddings_rotation.npy``); the model's own arrays are untouched.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.linalg
from threadpoolctl import threadpool_limits

from tastebud.ids import Vocabulary
from tastebud.recipes.base import FloatArray

_log = logging.getLogger(__name__)

SPACE_FILE = "embeddings.json"
ROTATION_FILE = "embeddings_rotation.npy"
# Below this many shared items a rotation fitted on them says little about the rest.
MIN_SHARED_ITEMS = 20


@dataclass(frozen=True)
class Space:
    """Where a version's vectors live: its space id and the rotation that puts its raw vectors
    there (``aligned = raw @ rotation``; None: the raw vectors are the space's coordinates)."""

    space_id: str
    rotation: FloatArray | None = None
    aligned_to: str | None = None  # the previous version's id
    shared_items: int = 0
    cosine_before: float | None = None  # mean cosine of the shared items' vectors
    cosine_after: float | None = None
    reason: str = ""  # why a new space started

    def apply(self, vectors: FloatArray) -> FloatArray:
        """``vectors`` (n x d) in this space's coordinates."""
        if self.rotation is None:
            return np.asarray(vectors, dtype=np.float32)
        return np.asarray(vectors @ self.rotation, dtype=np.float32)


@dataclass(frozen=True)
class Reference:
    """The previous version as alignment needs it: its id, recipe, space and *aligned* item
    vectors with their ids."""

    version_id: str
    recipe: str
    space_id: str
    items: Vocabulary
    vectors: FloatArray


def new_space(version_id: str, reason: str) -> Space:
    """A space that starts at ``version_id`` (its raw coordinates)."""
    return Space(space_id=f"space-{version_id.removeprefix('sv-')}", reason=reason)


def align(
    version_id: str,
    *,
    recipe: str,
    items: Vocabulary,
    vectors: FloatArray,
    previous: Reference | None,
) -> Space:
    """The space of a new version whose raw item vectors are ``vectors`` (row i: item i of
    ``items``): ``previous``'s, with the Procrustes rotation onto it, or a new one."""
    if previous is None:
        return new_space(version_id, "no previous version")
    if previous.recipe != recipe:
        return new_space(version_id, f"recipe changed ({previous.recipe} -> {recipe})")
    if previous.vectors.shape[1] != vectors.shape[1]:
        return new_space(
            version_id, f"dimensions changed ({previous.vectors.shape[1]} -> {vectors.shape[1]})"
        )
    new_rows, old_rows = shared_rows(items, vectors, previous.items, previous.vectors)
    needed = max(MIN_SHARED_ITEMS, vectors.shape[1])
    if len(new_rows) < needed:
        return new_space(version_id, f"{len(new_rows)} shared items, fewer than {needed}")
    source = vectors[new_rows].astype(np.float64)
    target = previous.vectors[old_rows].astype(np.float64)
    rotation = procrustes(source, target)
    space = Space(
        space_id=previous.space_id, rotation=rotation.astype(np.float32),
        aligned_to=previous.version_id, shared_items=len(new_rows),
        cosine_before=mean_cosine(source, target),
        cosine_after=mean_cosine(source @ rotation, target),
    )  # fmt: skip
    _log.info(
        "embeddings aligned version=%s to=%s space=%s shared=%d cosine_before=%.3f after=%.3f",
        version_id, previous.version_id, space.space_id, space.shared_items,
        space.cosine_before, space.cosine_after,
    )  # fmt: skip
    return space


def procrustes(source: npt.NDArray[np.float64], target: npt.NDArray[np.float64]) -> FloatArray:
    """The orthogonal ``R`` (d x d) minimising ``‖source R - target‖_F``."""
    # an SVD of d x d: ~15 ms on one thread, while threaded BLAS on a loaded machine took 0.4-2.5 s
    with threadpool_limits(limits=1, user_api="blas"):
        rotation, _ = scipy.linalg.orthogonal_procrustes(source, target, check_finite=False)
    return np.asarray(rotation)


def shared_rows(
    items: Vocabulary, vectors: FloatArray, old_items: Vocabulary, old_vectors: FloatArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows of the items both versions know with a non-zero vector in each (a sequential
    model's item without events or metadata has none), as ``(new rows, old rows)``."""
    ids = items.ids(range(len(vectors)))
    old = old_items.indices(i if i is not None else "" for i in ids).astype(np.int64)
    new = np.arange(len(vectors), dtype=np.int64)
    keep = (old >= 0) & (old < len(old_vectors))
    new, old = new[keep], old[keep]
    nonzero = (np.abs(vectors[new]).sum(axis=1) > 0) & (np.abs(old_vectors[old]).sum(axis=1) > 0)
    return new[nonzero], old[nonzero]


def mean_cosine(left: npt.NDArray[np.floating], right: npt.NDArray[np.floating]) -> float:
    """Mean cosine similarity of corresponding rows."""
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    cosines = np.einsum("ij,ij->i", left, right) / np.maximum(norms, 1e-12)
    return float(cosines.mean()) if len(cosines) else 0.0


# on disk ----------------------------------------------------------------------------------------
def save_space(folder: Path, space: Space) -> None:
    """Write ``space`` into a version's folder (before its checksums)."""
    body = {k: v for k, v in asdict(space).items() if k != "rotation"}
    (folder / SPACE_FILE).write_text(json.dumps(body, indent=2, sort_keys=True))
    if space.rotation is not None:
        np.save(folder / ROTATION_FILE, space.rotation, allow_pickle=False)


def load_space(folder: Path, version_id: str) -> Space:
    """The space saved with a version; a version trained before alignment existed is its own."""
    path = folder / SPACE_FILE
    if not path.exists():
        return new_space(version_id, "trained before embedding alignment")
    body = json.loads(path.read_text())
    rotation = folder / ROTATION_FILE
    return Space(
        **body, rotation=np.load(rotation, allow_pickle=False) if rotation.exists() else None
    )
