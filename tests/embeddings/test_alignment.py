"""Orthogonal alignment of a version's vectors to the previous version's space, on planted
rotations: the space is recovered, dot products are kept, and new spaces start when they must."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from tastebud.embeddings.alignment import (
    MIN_SHARED_ITEMS,
    Reference,
    Space,
    align,
    load_space,
    mean_cosine,
    save_space,
)
from tastebud.ids import Vocabulary


def planted(n_items: int = 60, dimensions: int = 8, *, noise: float = 0.05, seed: int = 0):
    """Old item vectors, and new ones: the same rotated at random plus a little noise."""
    rng = np.random.default_rng(seed)
    old = rng.normal(size=(n_items, dimensions)).astype(np.float32)
    rotation = special_ortho_group.rvs(dimensions, random_state=seed)
    new = (old @ rotation.T + noise * rng.normal(size=old.shape)).astype(np.float32)
    return old, new


def reference(old: np.ndarray, ids: list[str], *, recipe: str = "sequential") -> Reference:
    return Reference("sv-old", recipe, "space-old", Vocabulary(ids), old)


def test_a_rotated_retrain_is_rotated_back_and_keeps_its_dot_products() -> None:
    old, new = planted()
    ids = [f"i{i}" for i in range(len(old))]
    # the new version knows the items in another order, and one item more
    order = np.random.default_rng(1).permutation(len(ids))
    new_ids = [ids[i] for i in order] + ["fresh"]
    new_vectors = np.vstack([new[order], np.ones((1, 8), np.float32)])
    space = align("sv-new", recipe="sequential", items=Vocabulary(new_ids),
                  vectors=new_vectors, previous=reference(old, ids))  # fmt: skip
    assert space.space_id == "space-old" and space.aligned_to == "sv-old"
    assert space.shared_items == len(ids)
    assert space.cosine_before is not None and space.cosine_before < 0.5
    aligned = space.apply(new_vectors)[:-1]
    assert mean_cosine(aligned, old[order]) >= 0.99 and space.cosine_after >= 0.99
    users = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(space.apply(users) @ space.apply(new_vectors).T,
                               users @ new_vectors.T, rtol=1e-4, atol=1e-4)  # fmt: skip
    rotation = space.rotation
    assert rotation is not None
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(8), atol=1e-5)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("none", "no previous version"),
        ("recipe", "recipe changed"),
        ("dimensions", "dimensions changed (8 -> 4)"),
        ("few", f"fewer than {MIN_SHARED_ITEMS}"),
    ],
)
def test_a_new_space_starts_when_alignment_cannot_hold(change: str, reason: str) -> None:
    old, new = planted()
    ids = [f"i{i}" for i in range(len(old))]
    previous: Reference | None = reference(old, ids, recipe="user-personalization"
                                           if change == "recipe" else "sequential")  # fmt: skip
    items, vectors = Vocabulary(ids), new
    if change == "none":
        previous = None
    elif change == "dimensions":
        vectors = new[:, :4]
    elif change == "few":  # only 10 ids in common
        items = Vocabulary(ids[:10] + [f"new{i}" for i in range(len(ids) - 10)])
    space = align("sv-new", recipe="sequential", items=items, vectors=vectors, previous=previous)
    assert space.space_id == "space-new" and space.rotation is None
    assert reason in space.reason
    np.testing.assert_array_equal(space.apply(vectors), vectors)


def test_items_with_zero_vectors_do_not_count_as_shared() -> None:
    old, new = planted()
    ids = [f"i{i}" for i in range(len(old))]
    new[: len(ids) - 15] = 0.0  # e.g. sequential items without events or metadata
    space = align("sv-new", recipe="sequential", items=Vocabulary(ids), vectors=new,
                  previous=reference(old, ids))  # fmt: skip
    assert space.rotation is None and "15 shared items" in space.reason


def test_the_space_is_saved_beside_the_artifacts(tmp_path: Path) -> None:
    old, new = planted()
    ids = [f"i{i}" for i in range(len(old))]
    space = align("sv-new", recipe="sequential", items=Vocabulary(ids), vectors=new,
                  previous=reference(old, ids))  # fmt: skip
    save_space(tmp_path, space)
    loaded = load_space(tmp_path, "sv-new")
    assert loaded.space_id == space.space_id and loaded.aligned_to == "sv-old"
    assert loaded.rotation is not None and space.rotation is not None
    np.testing.assert_array_equal(loaded.rotation, space.rotation)
    older = load_space(tmp_path / "elsewhere", "sv-abc")  # trained before alignment existed
    assert older == Space("space-abc", reason="trained before embedding alignment")
