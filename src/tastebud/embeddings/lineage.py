"""Which space a newly trained version joins: the solution's newest active version is the one
downstream systems have been reading vectors from, so the new version is aligned to it."""

from __future__ import annotations

import logging
from pathlib import Path

from tastebud.embeddings.alignment import Reference, Space, align, load_space, new_space
from tastebud.errors import TastebudError
from tastebud.ids import Vocabulary
from tastebud.recipes import Embeddings, Model
from tastebud.serving.versions import load_version, version_folder
from tastebud.store import Store

_log = logging.getLogger(__name__)


def space_for(
    store: Store,
    artifacts: Path,
    *,
    group: str,
    solution: str,
    version_id: str,
    recipe: str,
    model: Model,
    items: Vocabulary,
) -> Space | None:
    """The space of version ``version_id`` of ``solution`` (being written now), or None for a
    model without embeddings. A previous version that cannot be read starts a new space
    rather than failing the training."""
    if not isinstance(model, Embeddings):
        return None
    vectors = model.item_embeddings()
    if vectors is None:
        return None
    try:
        previous = reference(store, artifacts, group=group, solution=solution, before=version_id)
    except (TastebudError, OSError, ValueError, KeyError) as error:
        _log.warning("embeddings: previous version unreadable solution=%s error=%r", solution,
                     error)  # fmt: skip
        return new_space(version_id, f"previous version unreadable ({error})")
    return align(version_id, recipe=recipe, items=items, vectors=vectors, previous=previous)


def reference(
    store: Store, artifacts: Path, *, group: str, solution: str, before: str
) -> Reference | None:
    """The newest active version of ``solution`` other than ``before``, with its aligned item
    vectors; None when there is none or it has no embeddings."""
    for record in store.list_solution_versions(group, solution):
        if record.status != "active" or record.id == before:
            continue
        folder = version_folder(artifacts, record.id)
        loaded = load_version(folder, record.id)
        model = loaded.model
        raw = model.item_embeddings() if isinstance(model, Embeddings) else None
        if raw is None:
            return None
        space = load_space(folder, record.id)
        return Reference(record.id, loaded.recipe, space.space_id, loaded.items, space.apply(raw))
    return None
