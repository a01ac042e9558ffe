"""Stable, reusable embeddings (issue 17, part 5): each version's item and user vectors rotated
into the previous version's space (``alignment``), looked up by id or exported to Parquet
(``service``)."""

from __future__ import annotations

from tastebud.embeddings.alignment import Space, align, load_space, save_space

__all__ = ["Space", "align", "load_space", "save_space"]
