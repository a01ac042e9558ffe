"""External ids <-> dense int32 indexes. Indexes are assigned once and never change."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import repeat
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tastebud.errors import NotFound

IntArray = npt.NDArray[np.int32]


class Vocabulary:
    """Maps external string ids to dense indexes ``0..n-1`` and back.

    A slot may be empty (``None``) where an id was deleted; its index is never reused, so
    arrays built from an older vocabulary keep their meaning.
    """

    def __init__(self, ids: Sequence[str | None] = ()) -> None:
        self._ids: list[str | None] = list(ids)
        self._index = {value: i for i, value in enumerate(self._ids) if value is not None}
        if len(self._index) != sum(v is not None for v in self._ids):
            raise ValueError("vocabulary ids must be unique")

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def index(self, external_id: str) -> int:
        try:
            return self._index[external_id]
        except KeyError:
            raise NotFound(f"unknown id {external_id!r}") from None

    def get(self, external_id: str, default: int = -1) -> int:
        return self._index.get(external_id, default)

    def indices(self, external_ids: Iterable[str]) -> IntArray:
        """Indexes of ``external_ids``; ``-1`` where an id is unknown."""
        # map over two iterables: no Python-level generator frame per id (~2x on 1,000 ids)
        return np.fromiter(map(self._index.get, external_ids, repeat(-1)), dtype=np.int32)

    def id(self, index: int) -> str:
        value = self._ids[index] if 0 <= index < len(self._ids) else None
        if value is None:
            raise NotFound(f"no id at index {index}")
        return value

    def ids(self, indices: Iterable[int]) -> list[str | None]:
        table = self._ids
        return [table[i] for i in indices]

    def extend(self, external_ids: Iterable[str]) -> IntArray:
        """Indexes of ``external_ids``, appending the ones not seen yet."""
        out = []
        for value in external_ids:
            index = self._index.get(value)
            if index is None:
                index = len(self._ids)
                self._ids.append(value)
                self._index[value] = index
            out.append(index)
        return np.asarray(out, dtype=np.int32)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self._ids), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(json.loads(path.read_text(encoding="utf-8")))
