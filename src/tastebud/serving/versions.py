"""Trained solution versions on disk, and the in-memory cache serving reads them from.

A version folder holds ``version.json`` (recipe, configuration, snapshot, metrics), the
vocabularies (``users.json``, ``items.json``), ``popularity.npy`` (the fallback order) and the
recipe's own ``model/`` folder. Nothing is pickled, so a newer tastebud reads older versions.
``checksums.json`` (the SHA-256 of every file, written last) lets ``tastebud doctor`` find a
damaged artifact; versions written before it existed have none and load as before.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud.errors import NotFound
from tastebud.ids import Vocabulary
from tastebud.recipes import Model, get_recipe
from tastebud.recipes.base import FloatArray, IntArray
from tastebud.serving.nearest import NearestItems, UserVectors


@dataclass(frozen=True)
class LoadedVersion:
    """A solution version ready to answer requests."""

    id: str
    recipe: str
    meta: dict[str, Any]
    model: Model
    users: Vocabulary
    items: Vocabulary
    popularity: FloatArray  # summed training weight per item: the fallback order
    item_features: sp.csr_matrix | None  # one-hot item metadata, columns meta["feature_names"]
    deleted_users: IntArray  # slots of erased ids, never answered
    deleted_items: IntArray
    # The arrival number of the last interaction a live-updated model has seen (mutable).
    live_seq: list[int] = dataclasses.field(default_factory=list, compare=False)
    # An approximate top-k index over the model's item vectors (large catalogues only).
    nearest: NearestItems | None = dataclasses.field(default=None, compare=False)


CHECKSUMS = "checksums.json"
# Written after training by whichever process needs it first (recipes/mapped.py): not part of
# the artifact, so neither summed nor backed up.
DERIVED = "derived"


def version_folder(root: Path, version_id: str) -> Path:
    return root / version_id


def artifact_files(folder: Path) -> list[Path]:
    """The files of a version's artifact, relative to ``folder``, sorted (derived arrays and
    the checksums themselves left out)."""
    files = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()]
    return sorted(p for p in files if DERIVED not in p.parts and p != Path(CHECKSUMS))


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def write_checksums(folder: Path) -> None:
    sums = {str(p): file_sha256(folder / p) for p in artifact_files(folder)}
    (folder / CHECKSUMS).write_text(json.dumps({"sha256": sums}, indent=1, sort_keys=True))


def verify_checksums(folder: Path) -> list[str] | None:
    """What differs from the folder's ``checksums.json`` (``[]``: nothing); None when it has
    none (written by a tastebud before checksums)."""
    path = folder / CHECKSUMS
    if not path.exists():
        return None
    try:
        expected: dict[str, str] = json.loads(path.read_text())["sha256"]
    except (ValueError, KeyError, TypeError) as error:
        return [f"{CHECKSUMS} is unreadable ({error})"]
    present = {str(p) for p in artifact_files(folder)}
    problems = [f"{name}: missing" for name in sorted(set(expected) - present)]
    problems += [f"{name}: not in {CHECKSUMS}" for name in sorted(present - set(expected))]
    problems += [f"{name}: checksum differs (damaged or changed)"
                 for name in sorted(present & set(expected))
                 if file_sha256(folder / name) != expected[name]]  # fmt: skip
    return problems


def save_version(
    folder: Path,
    *,
    recipe: str,
    meta: dict[str, Any],
    model: Model,
    users: Vocabulary,
    items: Vocabulary,
    popularity: FloatArray,
    item_features: sp.csr_matrix | None = None,
) -> None:
    """Write a version's folder (the caller writes to a temporary name and renames it)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model")
    users.save(folder / "users.json")
    items.save(folder / "items.json")
    np.save(folder / "popularity.npy", popularity.astype(np.float32), allow_pickle=False)
    if item_features is not None:
        sp.save_npz(folder / "item_features.npz", sp.csr_matrix(item_features))
    body = {"recipe": recipe, **meta}
    (folder / "version.json").write_text(json.dumps(body, indent=2, sort_keys=True))
    write_checksums(folder)


def load_version(folder: Path, version_id: str) -> LoadedVersion:
    if not (folder / "version.json").exists():
        raise NotFound(f"solution version {version_id!r} has no artifacts at {folder}")
    meta = json.loads((folder / "version.json").read_text())
    recipe = str(meta["recipe"])
    users = Vocabulary.load(folder / "users.json")
    items = Vocabulary.load(folder / "items.json")
    features = folder / "item_features.npz"
    return LoadedVersion(
        id=version_id,
        recipe=recipe,
        meta=meta,
        model=get_recipe(recipe).load(folder / "model"),
        users=users,
        items=items,
        popularity=np.load(folder / "popularity.npy", allow_pickle=False),
        item_features=sp.load_npz(features).tocsr() if features.exists() else None,
        deleted_users=empty_slots(users),
        deleted_items=empty_slots(items),
    )


def with_nearest(
    version: LoadedVersion, *, min_items: int | None, probe_share: float = 0.2
) -> LoadedVersion:
    """``version`` with an approximate index when its model scores by inner products and its
    catalogue has at least ``min_items`` items (None: never)."""
    model = version.model
    if min_items is None or len(version.items) < min_items or not isinstance(model, UserVectors):
        return version
    vectors = model.item_vectors()
    if vectors is None:
        return version
    return dataclasses.replace(version, nearest=NearestItems(vectors, probe_share=probe_share))


def empty_slots(vocabulary: Vocabulary) -> IntArray:
    ids = vocabulary.ids(range(len(vocabulary)))
    return np.array([i for i, value in enumerate(ids) if value is None], dtype=np.int32)


def without_users(version: LoadedVersion, erased: Callable[[str], bool]) -> LoadedVersion:
    """``version`` with every user for which ``erased(id)`` holds marked deleted (privacy)."""
    ids = version.users.ids(range(len(version.users)))
    gone = [i for i, value in enumerate(ids) if value is not None and erased(value)]
    if not gone:
        return version
    deleted = np.union1d(version.deleted_users, np.array(gone, dtype=np.int32)).astype(np.int32)
    return dataclasses.replace(version, deleted_users=deleted)


class VersionCache:
    """The most recently used versions, loaded once per process.

    Artifacts never change, but users may be erased by other processes: after ``max_age``
    seconds a version is ``refresh``-ed (its erased users masked again) in the background while
    the current copy keeps answering. A version is loaded by one thread at a time; requests that
    arrive meanwhile wait for that load instead of repeating it.
    """

    def __init__(
        self,
        load: Callable[[str], LoadedVersion],
        *,
        refresh: Callable[[LoadedVersion], LoadedVersion] | None = None,
        capacity: int = 8,
        max_age: float = 60.0,
    ) -> None:
        self._load = load
        self._refresh = refresh
        self._capacity = capacity
        self._max_age = max_age
        self._loaded: OrderedDict[str, tuple[float, LoadedVersion]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def get(self, version_id: str) -> LoadedVersion:
        with self._lock:
            entry = self._loaded.get(version_id)
            if entry is not None:
                self._loaded.move_to_end(version_id)
                if self._stale(version_id, entry[0]):
                    self._refreshing.add(version_id)
                    renew = threading.Thread(target=self._renew, args=(version_id, entry[1]),
                                             daemon=True)  # fmt: skip
                    renew.start()
                return entry[1]
            loading = self._loading.setdefault(version_id, threading.Lock())
        with loading:
            with self._lock:
                entry = self._loaded.get(version_id)
            if entry is not None:  # another request loaded it while this one waited
                return entry[1]
            version = self._load(version_id)
            self._keep(version_id, version)
            with self._lock:
                self._loading.pop(version_id, None)
            return version

    def is_loaded(self, version_id: str) -> bool:
        """Whether :meth:`get` would answer without loading (no I/O, no wait)."""
        with self._lock:
            return version_id in self._loaded

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()

    def _stale(self, version_id: str, loaded_at: float) -> bool:
        return (time.monotonic() - loaded_at >= self._max_age
                and version_id not in self._refreshing)  # fmt: skip

    def _renew(self, version_id: str, version: LoadedVersion) -> None:
        try:
            renewed = self._refresh(version) if self._refresh else self._load(version_id)
            with self._lock:
                if version_id in self._loaded:  # not cleared meanwhile (an erasure here)
                    self._loaded[version_id] = (time.monotonic(), renewed)
        finally:
            with self._lock:
                self._refreshing.discard(version_id)

    def _keep(self, version_id: str, version: LoadedVersion) -> None:
        if gc.get_freeze_count():
            # A server froze its long-lived objects (api/app.py); a version's vocabularies
            # (~100k objects a catalogue) join them, or every full collection walks them again.
            gc.freeze()
        with self._lock:
            self._loaded[version_id] = (time.monotonic(), version)
            self._loaded.move_to_end(version_id)
            while len(self._loaded) > self._capacity:
                self._loaded.popitem(last=False)
