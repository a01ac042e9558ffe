"""The contract every recipe keeps; each recipe's test module calls :func:`check_contract`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tastebud.recipes import Model, Query, TrainingData, get_recipe, parse_config


def contract_query(data: TrainingData) -> Query:
    """A known user with history, a cold user with history, a known user with an empty one."""
    history = data.items[data.users == 0][:5]
    return Query(
        users=np.array([0, -1, 1], np.int32),
        history_indptr=np.array([0, len(history), 2 * len(history), 2 * len(history)], np.int64),
        history_items=np.concatenate([history, history]).astype(np.int32),
        times=np.full(3, int(data.timestamps.max()) + 1, np.int64),
    )


def check_contract(
    name: str, data: TrainingData, params: dict[str, object], tmp_path: Path
) -> Model:
    """Fit, score shapes and dtypes, cold and empty queries, save/load equality, same seed."""
    recipe = get_recipe(name)
    config = parse_config(recipe, params)
    model = recipe.fit(data, config, seed=7)
    query = contract_query(data)
    scores = model.score(query)
    assert scores.shape == (len(query), data.n_items)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()

    model.save(tmp_path / "artifact")
    assert not list((tmp_path / "artifact").glob("*.pkl"))
    reloaded = recipe.load(tmp_path / "artifact")
    np.testing.assert_allclose(reloaded.score(query), scores, rtol=1e-5, atol=1e-6)

    again = recipe.fit(data, config, seed=7)
    np.testing.assert_allclose(again.score(query), scores, rtol=1e-5, atol=1e-6)
    return model
