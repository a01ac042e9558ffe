"""Embeddings through the engine: versions trained one after the other share a space, lookups
and exports name the version and the space, and mistakes get clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tastebud.embeddings.alignment import mean_cosine
from tastebud.embeddings.service import MAX_IDS
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tastebud.ingest import PutEventsRequest
from tests.serving.conftest import loaded  # noqa: F401  (fixture)

ALS = {"algorithm": "als", "factors": 8}
ITEMS = [f"i{i}" for i in range(40)]


@pytest.fixture
def two_versions(loaded: Engine, group: str) -> tuple[Engine, str, str]:  # noqa: F811
    """ALS trained twice with different seeds: the versions' ids."""
    loaded.create_solution(group, "als", {"recipe": "user-personalization", "params": ALS,
                                           "evaluate": False})  # fmt: skip
    first = loaded.train(group, "als", seed=0).id
    second = loaded.train(group, "als", seed=1).id
    return loaded, first, second


def test_retrained_versions_share_a_space_and_their_items_agree(
    two_versions: tuple[Engine, str, str], group: str
) -> None:
    engine, first, second = two_versions
    old = engine.embeddings.lookup(group, "als", "items", ITEMS, version_id=first)
    new = engine.embeddings.lookup(group, "als", "items", ITEMS)
    assert old.version_id == first and new.version_id == second
    assert old.space_id == new.space_id == f"space-{first.removeprefix('sv-')}"
    assert mean_cosine(new.vectors, old.vectors) >= 0.9
    # the raw factors are unrelated: the agreement is the alignment's
    raw = engine.recommender.resolve_version(group, version_id=second).model
    assert mean_cosine(raw.item_embeddings(), old.vectors) < 0.5  # type: ignore[attr-defined]


def test_user_vectors_follow_new_events_and_dot_to_the_scores(
    two_versions: tuple[Engine, str, str], group: str
) -> None:
    engine, _, second = two_versions
    users = engine.embeddings.lookup(group, "als", "users", ["u0", "u40"])
    items = engine.embeddings.lookup(group, "als", "items", ITEMS)
    version = engine.recommender.resolve_version(group, version_id=second)
    answer = engine.recommender.recommend(group, version, user_id="u0", k=5)
    scores = users.vectors[0] @ items.vectors.T
    for result in answer.results:  # the served scores are the aligned vectors' dot products
        assert result.score == pytest.approx(float(scores[ITEMS.index(result.id)]), abs=1e-3)
    click = {"itemId": "i39", "eventType": "click", "sentAt": 1_700_000_000}
    engine.put_events(
        group, PutEventsRequest.model_validate({"userId": "u0", "eventList": [click]})
    )
    after = engine.embeddings.lookup(group, "als", "users", ["u0"])
    assert not np.allclose(after.vectors[0], users.vectors[0])


def test_lookup_errors_name_what_is_wrong(
    two_versions: tuple[Engine, str, str], group: str
) -> None:
    engine, _, _ = two_versions
    with pytest.raises(NotFound, match=r"2 items without a vector .*'nope', 'gone'"):
        engine.embeddings.lookup(group, "als", "items", ["i0", "nope", "gone"])
    with pytest.raises(NotFound, match=r"users without a vector .*'stranger'"):
        engine.embeddings.lookup(group, "als", "users", ["u1", "stranger"])
    with pytest.raises(InvalidInput, match=f"at most {MAX_IDS}"):
        engine.embeddings.lookup(group, "als", "items", [f"x{i}" for i in range(MAX_IDS + 1)])
    with pytest.raises(InvalidInput, match="at least one id"):
        engine.embeddings.lookup(group, "als", "items", [])
    engine.create_solution(group, "popular", {"recipe": "popularity-count", "evaluate": False})
    engine.train(group, "popular")
    with pytest.raises(InvalidInput, match="'popularity-count' has no embeddings"):
        engine.embeddings.lookup(group, "popular", "items", ["i0"])


def test_export_writes_the_stated_schema(
    two_versions: tuple[Engine, str, str], group: str, tmp_path: Path
) -> None:
    engine, first, second = two_versions
    for kind, count in (("items", 40), ("users", 60)):
        path = tmp_path / f"{kind}.parquet"
        assert engine.embeddings.export(group, "als", kind, path) == count  # type: ignore[arg-type]
        table = pq.read_table(path)
        assert table.schema.field("vector").type == pa.list_(pa.float32(), 8)
        assert table.column_names == ["id", "vector", "version_id", "space_id"]
        assert set(table["version_id"].to_pylist()) == {second}
        assert set(table["space_id"].to_pylist()) == {f"space-{first.removeprefix('sv-')}"}
        looked_up = engine.embeddings.lookup(group, "als", kind, table["id"].to_pylist()[:3])
        vectors = np.array(table["vector"].to_pylist()[:3], np.float32)
        np.testing.assert_allclose(vectors, looked_up.vectors, rtol=1e-6)
