"""Item and user vectors of a solution's serving version, in its stable space (``alignment``):
looked up by id (the API, the SDK) or exported whole to Parquet (the CLI).

A user's vector comes from the user's history as a request reads it now (``batch.scoring``'s
queries), so, like recommendations, it follows events newer than the model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tastebud.batch.formats import LineRequest
from tastebud.batch.scoring import history_query
from tastebud.embeddings.alignment import Space, load_space
from tastebud.embeddings.export import ParquetVectors
from tastebud.errors import InvalidInput, NotFound
from tastebud.recipes import Embeddings
from tastebud.recipes.base import FloatArray
from tastebud.serving.service import Recommender
from tastebud.serving.versions import LoadedVersion, version_folder

Kind = Literal["items", "users"]
MAX_IDS = 100  # ids per lookup (more: export the whole table)
MAX_IDS_LENGTH = 4_096  # characters of the comma-separated ids in a URL
EXPORT_CHUNK = 1_024  # users encoded at once when exporting
_SHOWN_UNKNOWN = 20  # unknown ids named in an error
_CACHED_SPACES = 64


@dataclass(frozen=True, slots=True)
class Vectors:
    """Vectors of some ids from one version, in its space."""

    version_id: str
    space_id: str
    ids: list[str]
    vectors: FloatArray  # (len(ids) x d) float32


class EmbeddingService:
    """Looks up and exports a solution's embeddings. Thread-safe."""

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender
        self._spaces: dict[str, Space] = {}  # version id -> space (artifacts never change)
        self._lock = threading.Lock()

    def lookup(
        self, group: str, solution: str, kind: Kind, ids: Sequence[str], *,
        version_id: str | None = None,
    ) -> Vectors:  # fmt: skip
        """The vectors of ``ids`` (items or users) from the solution's newest active version
        (or ``version_id``), in the order given.

        Raises:
            InvalidInput: no ids, more than :data:`MAX_IDS`, or a recipe without embeddings.
            NotFound: ids the version has no vector for (all of them named, up to 20).
        """
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            raise InvalidInput("ids: give at least one id (ids=a,b,c)")
        if len(wanted) > MAX_IDS:
            raise InvalidInput(f"ids: {len(wanted)} ids, at most {MAX_IDS} per request")
        version = self._version(group, solution, version_id)
        if kind == "items":
            vectors, present = self._item_vectors(version, wanted)
        else:
            vectors, present = self._user_vectors(group, version, wanted)
        _check_known(kind, [i for i, ok in zip(wanted, present, strict=True) if not ok], version)
        space = self.space(version)
        return Vectors(version.id, space.space_id, wanted, space.apply(vectors))

    def export(
        self, group: str, solution: str, kind: Kind, path: Path, *,
        version_id: str | None = None,
    ) -> int:  # fmt: skip
        """Write every item (or every user of the version) with a vector to ``path`` (Parquet:
        ``id``, ``vector``, ``version_id``, ``space_id``); returns how many rows."""
        version = self._version(group, solution, version_id)
        space = self.space(version)
        with ParquetVectors(path, version_id=version.id, space_id=space.space_id) as out:
            for ids, vectors in self._all(group, version, kind):
                out.write(ids, space.apply(vectors))
        return out.rows

    def space(self, version: LoadedVersion) -> Space:
        """``version``'s space, read once per process."""
        space = self._spaces.get(version.id)
        if space is None:
            folder = version_folder(self.recommender.settings.artifacts, version.id)
            space = load_space(folder, version.id)
            with self._lock:
                if len(self._spaces) >= _CACHED_SPACES:
                    self._spaces.clear()
                self._spaces[version.id] = space
        return space

    def _version(self, group: str, solution: str, version_id: str | None) -> LoadedVersion:
        version = self.recommender.resolve_version(group, solution=solution,
                                                   version_id=version_id)  # fmt: skip
        model = version.model
        if not isinstance(model, Embeddings) or model.item_embeddings() is None:
            raise InvalidInput(
                f"solution {solution!r}: recipe {version.recipe!r} has no embeddings (sequential "
                "and the ALS/BPR algorithms of user-personalization, personalized-ranking and "
                "item-affinity have)"
            )
        return version

    def _item_vectors(
        self, version: LoadedVersion, ids: list[str]
    ) -> tuple[FloatArray, np.ndarray]:
        table = _embeddings(version).item_embeddings()
        assert table is not None  # checked by _version
        rows = version.items.indices(ids)
        present = (rows >= 0) & ~np.isin(rows, version.deleted_items)
        return np.asarray(table[np.where(present, rows, 0)], np.float32), present

    def _user_vectors(
        self, group: str, version: LoadedVersion, ids: list[str]
    ) -> tuple[FloatArray, np.ndarray]:
        requests = [LineRequest(user_id=user_id) for user_id in ids]
        query = history_query(self.recommender, group, version, requests)
        vectors, present = _embeddings(version).user_embeddings(query)
        erased = np.isin(query.users, version.deleted_users) & (query.users >= 0)
        return vectors, present & ~erased

    def _all(
        self, group: str, version: LoadedVersion, kind: Kind
    ) -> Iterator[tuple[list[str], FloatArray]]:
        """Every id with a vector and its raw vectors, in chunks."""
        vocabulary = version.items if kind == "items" else version.users
        ids = [i for i in vocabulary.ids(range(len(vocabulary))) if i is not None]
        if kind == "items":
            vectors, present = self._item_vectors(version, ids)
            yield [i for i, ok in zip(ids, present, strict=True) if ok], vectors[present]
            return
        for start in range(0, len(ids), EXPORT_CHUNK):
            chunk = ids[start : start + EXPORT_CHUNK]
            vectors, present = self._user_vectors(group, version, chunk)
            yield [i for i, ok in zip(chunk, present, strict=True) if ok], vectors[present]


def _embeddings(version: LoadedVersion) -> Embeddings:
    model = version.model
    assert isinstance(model, Embeddings)
    return model


def _check_known(kind: Kind, unknown: list[str], version: LoadedVersion) -> None:
    if not unknown:
        return
    what = "items" if kind == "items" else "users"
    shown = ", ".join(repr(i) for i in unknown[:_SHOWN_UNKNOWN])
    more = f" and {len(unknown) - _SHOWN_UNKNOWN} more" if len(unknown) > _SHOWN_UNKNOWN else ""
    raise NotFound(
        f"ids: {len(unknown)} {what} without a vector in version {version.id!r} "
        f"(unknown, or no history): {shown}{more}"
    )
