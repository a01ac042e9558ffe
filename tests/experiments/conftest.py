"""Experiment fixtures: a group with the clustered data, two rule-engine campaigns (no
training needed) and items with a price, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from tastebud.engine import Engine
from tastebud.ingest import ItemIn
from tastebud.store import Event
from tests.serving.conftest import write_clustered

ARMS = {"control": ("rules-a", 50.0), "treatment": ("rules-b", 50.0)}


@pytest.fixture
def campaigns(engine: Engine, group: str, tmp_path: Path) -> Engine:
    """``engine`` whose group has campaigns ``rules-a`` and ``rules-b`` (the rule engine
    answers both: 720 interactions are under the threshold) and items ``i0..i39`` priced
    ``i`` + 1."""
    interactions, _ = write_clustered(tmp_path)
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.put_schema(group, "items", {"PRICE": "numerical", "GENRES": "categorical"})
    engine.put_items(group, [ItemIn.model_validate({"itemId": f"i{i}", "properties": {
        "PRICE": i + 1, "GENRES": "a" if i < 20 else "b"}}) for i in range(40)])  # fmt: skip
    engine.create_solution(group, "popular", {"recipe": "popularity-count"})
    engine.create_filter(group, "genre-b", 'INCLUDE ItemID WHERE Items.GENRES IN ("b")')
    for name, order in (("rules-a", "popularity"), ("rules-b", "newest")):
        engine.create_campaign(group, name, "popular", config={"rules": {"order": order}})
    return engine


def events(engine: Engine, group: str, rows: Iterable[Event]) -> None:
    """Store events straight away (one transaction)."""
    engine.store.put_events(group, list(rows))


def now() -> int:
    return int(time.time())
