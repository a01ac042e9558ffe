"""Item text as metadata: the offline sentence model, the cache by text hash, the items' text
fields, and similar-items for items nobody has touched (issue 17, part 4). A handful of short
texts only: the model loads once per process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tastebud.engine import Engine
from tastebud.errors import InvalidInput
from tastebud.ids import Vocabulary
from tastebud.jobs.training import load_training_data
from tastebud.recipes import TrainingData, parse_config
from tastebud.recipes.similar_items import SimilarItems
from tastebud.store import Event, Record
from tastebud.text import DIMENSION, TextVectorCache, item_texts
from tastebud.text.items import CACHE_FOLDER
from tastebud.training import SolutionDataConfig, build_training_data


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> object:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_each_text_is_embedded_once_and_read_back_from_the_cache(tmp_path: Path) -> None:
    texts = ["a red apple", "a green apple", "", "a fast car", "a red apple"]
    first = TextVectorCache(tmp_path)
    vectors = first.vectors(texts)
    assert first.embedded == 3  # the repeat and the blank text cost nothing
    assert vectors.shape == (5, DIMENSION)
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0, rtol=1e-4)
    assert not vectors[2].any()
    np.testing.assert_array_equal(vectors[0], vectors[4])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[3]  # apples are closer than cars
    again = TextVectorCache(tmp_path)  # a new process would start like this
    np.testing.assert_array_equal(again.vectors(texts), vectors)
    assert again.embedded == 0
    again.vectors(["a slow bicycle", "a red apple"])
    assert again.embedded == 1  # only the new text


def items_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "ITEM_ID": ["i0", "i1", "i2", "i3", "i4", "i5"],
        "TITLE": ["Toy Story", "Toy Story 2", "Heat", "Casino", "Goodfellas", "Toy Story 3"],
        "BLURB": ["toys come alive", None, "a heist in LA", None, None, "toys again"],
        "YEAR": [1995, 1999, 1995, 1995, 1990, 2010],
    })  # fmt: skip


def test_textual_fields_join_per_item_and_misuse_is_named() -> None:
    vocabulary = Vocabulary(["i2", "i0", "i9"])  # i9 has no row: no text
    texts = item_texts(items_frame(), vocabulary, ["TITLE", "BLURB"])
    assert texts is not None
    assert texts.texts == ("Heat. a heist in LA", "Toy Story. toys come alive", "")
    assert texts.has_text.tolist() == [True, True, False]
    assert item_texts(items_frame(), vocabulary, []) is None
    with pytest.raises(InvalidInput, match="no textual field 'PLOT'"):
        item_texts(items_frame(), vocabulary, ["PLOT"])
    with pytest.raises(InvalidInput, match=r"items.YEAR: a textual field holds text"):
        item_texts(items_frame(), vocabulary, ["YEAR"])
    with pytest.raises(InvalidInput, match="need an items file"):
        item_texts(None, vocabulary, ["TITLE"])


def watched(tmp_path: Path) -> tuple[TrainingData, Vocabulary]:
    """Users 0-2 watch the crime films, user 3 the first two Toy Stories; nobody touched i5."""
    rows = [(u, i) for u in range(3) for i in ("i2", "i3", "i4")] + [(3, "i0"), (3, "i1")]
    interactions = pl.DataFrame({
        "USER_ID": [f"u{u}" for u, _ in rows], "ITEM_ID": [i for _, i in rows],
        "TIMESTAMP": list(range(len(rows))),
    })  # fmt: skip
    data, _, items = build_training_data(
        interactions, items_frame(), item_textual=["TITLE"], text_cache=tmp_path
    )
    return data, items


def test_similar_items_answers_an_untouched_item_by_its_text(tmp_path: Path) -> None:
    data, items = watched(tmp_path)
    recipe = SimilarItems()
    model = recipe.fit(data, parse_config(recipe, {"mode": "cosine"}))
    anchors = items.indices(["i5", "i2"])  # Toy Story 3 (untouched), Heat
    scores = model.similar_items(anchors)
    top = items.ids(np.argsort(-scores[0])[:2])
    assert set(top) == {"i0", "i1"}  # Toy Story 3 -> Toy Story, Toy Story 2: by their titles
    blind = recipe.fit(data, parse_config(recipe, {"mode": "cosine", "text_weight": 0.0}))
    popular = items.ids(np.argsort(-blind.similar_items(anchors)[0])[:2])
    assert not set(popular) & {"i0", "i1"}  # without text: the most watched films
    np.testing.assert_allclose(blind.similar_items(anchors[1:]), scores[1:])  # touched: same
    model.save(tmp_path / "model")
    np.testing.assert_allclose(recipe.load(tmp_path / "model").similar_items(anchors[:1]),
                               scores[:1])  # fmt: skip


def test_declared_textual_fields_reach_training_and_similar_items(
    engine: Engine, group: str
) -> None:
    engine.put_schema(group, "items", {"TITLE": "textual", "GENRES": "categorical"})
    titles = {"i0": "Toy Story", "i1": "Toy Story 2", "i2": "Heat", "i3": "Casino",
              "i4": "Goodfellas", "i5": "Toy Story 3"}  # fmt: skip
    engine.store.put_records(group, "items", [Record(i, {"TITLE": t, "GENRES": "film"})
                                              for i, t in titles.items()])  # fmt: skip
    watched = [("u0", "i2"), ("u0", "i3"), ("u1", "i3"), ("u1", "i4"), ("u2", "i2"),
               ("u2", "i4"), ("u3", "i0"), ("u3", "i1")]  # fmt: skip
    engine.store.put_events(group, [Event(i, 100 + n, u) for n, (u, i) in enumerate(watched)])
    data, _, items = load_training_data(
        engine.store, group, SolutionDataConfig(), up_to_seq=engine.store.last_seq(group)
    )
    assert data.item_texts is not None
    assert data.item_texts.texts[items.index("i5")] == "Toy Story 3"
    engine.create_solution(group, "like", {"recipe": "similar-items", "params": {"mode": "cosine"}})
    engine.train(group, "like")
    answer = engine.recommender.similar_items(group, {"solution": "like"}, item_id="i5", k=2)
    assert {scored.id for scored in answer.results} == {"i0", "i1"}
    assert list((engine.settings.artifacts / CACHE_FOLDER).rglob("*.npy"))  # cached by hash
