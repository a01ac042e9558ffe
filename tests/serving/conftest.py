"""A dataset group loaded with planted two-cluster data, for training and serving tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tastebud.engine import Engine
from tests.recipes.conftest import clustered


def write_clustered(folder: Path) -> tuple[Path, Path]:
    """The ``clustered()`` data as CSV files: users ``u0..u59``, items ``i0..i39``."""
    data = clustered()
    interactions = folder / "interactions.csv"
    pl.DataFrame(
        {
            "USER_ID": [f"u{u}" for u in data.users],
            "ITEM_ID": [f"i{i}" for i in data.items],
            "TIMESTAMP": data.timestamps,
            "EVENT_TYPE": ["click"] * data.size,
        }
    ).write_csv(interactions)
    items = folder / "items.csv"
    pl.DataFrame(
        {
            "ITEM_ID": [f"i{i}" for i in range(data.n_items)],
            "GENRES": ["a" if i < data.n_items // 2 else "b" for i in range(data.n_items)],
        }
    ).write_csv(items)
    return interactions, items


@pytest.fixture
def loaded(engine: Engine, group: str, tmp_path: Path) -> Engine:
    """``engine`` whose group holds the clustered interactions and items."""
    interactions, items = write_clustered(tmp_path)
    engine.put_schema(group, "items", {"GENRES": "categorical"})
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.import_file(group, "items", items, mode="full")
    return engine
