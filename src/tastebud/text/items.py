"""The items' textual fields as one text per item, and their vectors computed on first use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from tastebud.errors import InvalidInput
from tastebud.ids import Vocabulary
from tastebud.recipes.base import FloatArray
from tastebud.text.cache import TextVectorCache

CACHE_FOLDER = "text-embeddings"  # under the home's artifacts folder


@dataclass(frozen=True)
class ItemTexts:
    """Each item's text ("" without) and where its vectors are cached. ``vectors`` embeds on
    first use only, so recipes that never read text never load the sentence model."""

    texts: tuple[str, ...]
    cache: Path | None = None

    @cached_property
    def has_text(self) -> np.ndarray:
        """(n_items,) bool: the item has a non-blank text."""
        return np.array([bool(text.strip()) for text in self.texts], dtype=bool)

    @cached_property
    def vectors(self) -> FloatArray:
        """(n_items, 384) unit vectors, zero rows for items without text."""
        return TextVectorCache(self.cache).vectors(self.texts)


def item_texts(
    items: pl.DataFrame | None,
    vocabulary: Vocabulary,
    fields: Sequence[str],
    cache: Path | None = None,
) -> ItemTexts | None:
    """Per item index, its ``fields`` joined by ". " (blank values skipped); None without
    fields or without any text.

    Raises:
        InvalidInput: fields without an items frame, or a field that is not a text column.
    """
    if not fields:
        return None
    if items is None:
        raise InvalidInput(f"textual field(s) {', '.join(fields)} need an items file")
    for name in fields:
        if name not in items.columns:
            raise InvalidInput(f"items: no textual field {name!r}; columns: "
                               f"{', '.join(items.columns)}")  # fmt: skip
        kind = items.schema[name]
        if kind not in (pl.String, pl.Categorical, pl.Null):
            raise InvalidInput(f"items.{name}: a textual field holds text, not {kind} values")
    items = items.unique(subset="ITEM_ID", keep="last", maintain_order=True)
    parts = [pl.col(name).cast(pl.String).str.strip_chars() for name in fields]
    joined = items.select(
        "ITEM_ID", text=pl.concat_str(parts, separator=". ", ignore_nulls=True).fill_null("")
    )
    texts = [""] * len(vocabulary)
    for index, text in zip(vocabulary.indices(joined["ITEM_ID"].to_list()), joined["text"],
                           strict=True):  # fmt: skip
        if 0 <= index < len(texts):
            texts[index] = text
    if not any(text.strip() for text in texts):
        return None
    return ItemTexts(tuple(texts), cache)
