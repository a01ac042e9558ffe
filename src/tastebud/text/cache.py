"""Text vectors cached on disk under the hash of (model, text): a catalogue's titles are
embedded once, and a retrain embeds only the texts that are new or changed."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tastebud.recipes.base import FloatArray
from tastebud.text.embedding import DIMENSION, MODEL_NAME, embed


def text_key(text: str) -> str:
    """The cache key of ``text``: sha256 of the model name and the text."""
    return hashlib.sha256(f"{MODEL_NAME}\0{text}".encode()).hexdigest()


class TextVectorCache:
    """Vectors in ``folder/<key[:2]>/<key>.npy``, written atomically (safe across processes);
    without a folder, in memory only. ``embedded`` counts the texts the model has embedded."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.embedded = 0
        self._memory: dict[str, FloatArray] = {}

    def vectors(self, texts: Sequence[str]) -> FloatArray:
        """``(len(texts), DIMENSION)`` unit vectors (zero rows for empty texts)."""
        out = np.zeros((len(texts), DIMENSION), np.float32)
        missing: dict[str, list[int]] = {}
        for row, text in enumerate(texts):
            if not text.strip():
                continue
            key = text_key(text)
            vector = self._read(key)
            if vector is None:
                missing.setdefault(key, []).append(row)
            else:
                out[row] = vector
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            fresh = embed([texts[row] for row in firsts])
            self.embedded += len(firsts)
            for (key, rows), vector in zip(missing.items(), fresh, strict=True):
                out[rows] = vector
                self._write(key, vector)
        return out

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> FloatArray | None:
        if key in self._memory:
            return self._memory[key]
        if self.folder is None:
            return None
        try:
            vector = np.load(self._path(key))
        except (OSError, ValueError):  # absent, or a torn file from a crash: embed again
            return None
        if vector.shape != (DIMENSION,):
            return None
        self._memory[key] = vector.astype(np.float32)
        return self._memory[key]

    def _write(self, key: str, vector: FloatArray) -> None:
        self._memory[key] = vector
        if self.folder is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{key}.{uuid.uuid4().hex}.npy")
        np.save(partial, vector)
        os.replace(partial, path)
