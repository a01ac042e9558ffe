"""Solutions, training and solution versions through the engine, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound, NotReady
from tastebud.recipes import Query


def test_training_creates_an_active_version_with_metrics(loaded: Engine, group: str) -> None:
    loaded.create_solution(group, "popular", {"recipe": "popularity-count"})
    version = loaded.train(group, "popular")
    assert version.status == "active"
    metrics = version.body["metrics"]
    assert metrics["users"] == 60  # every user has 12 interactions: all scored
    assert 0.0 <= metrics["ndcg@10"] <= metrics["hr@10"] <= 1.0
    snapshot = dict(version.body["snapshot"])
    assert snapshot.pop("last_seq") >= 720  # arrival numbers are global on PostgreSQL
    assert snapshot == {"interactions": 720, "users": 60, "items": 40, "max_timestamp": 1_000_719}
    assert version.body["train_seconds"] >= 0
    assert [v.id for v in loaded.list_solution_versions(group, "popular")] == [version.id]
    folder = loaded.settings.artifacts / version.id
    assert (folder / "version.json").exists() and (folder / "model" / "model.json").exists()
    assert not list(folder.rglob("*.pkl"))


def test_event_weights_and_minimum_value_are_validated(loaded: Engine, group: str) -> None:
    with pytest.raises(InvalidInput, match="event_weights"):
        loaded.create_solution(
            group, "bad", {"recipe": "popularity-count", "data": {"event_weights": {"x": -1}}}
        )
    with pytest.raises(InvalidInput, match="unknown recipe 'nope'"):
        loaded.create_solution(group, "bad", {"recipe": "nope"})
    with pytest.raises(InvalidInput, match="half_life_days"):
        loaded.create_solution(
            group, "bad", {"recipe": "popularity-count", "params": {"half_life_days": "soon"}}
        )
    with pytest.raises(InvalidInput, match=r"solution\.colour"):
        loaded.create_solution(group, "bad", {"recipe": "popularity-count", "colour": "red"})
    with pytest.raises(NotFound):
        loaded.get_solution(group, "bad")  # nothing half-created


def test_a_filter_that_leaves_no_data_fails_the_version(loaded: Engine, group: str) -> None:
    loaded.create_solution(
        group, "watches", {"recipe": "popularity-count", "data": {"event_weights": {"watch": 1}}}
    )
    with pytest.raises(InvalidInput):
        loaded.train(group, "watches")
    (version,) = loaded.list_solution_versions(group, "watches")
    assert version.status == "failed" and version.body["error"]
    with pytest.raises(NotReady, match="no trained version"):
        loaded.recommender.resolve_version(group, solution="watches")


def test_background_training_reports_through_its_job(loaded: Engine, group: str) -> None:
    loaded.create_solution(group, "popular", {"recipe": "popularity-count"})
    version, job = loaded.start_training(group, "popular")
    assert version.status == "training"
    loaded.jobs.close()  # waits for the queue to drain
    finished = loaded.job(job.id)
    assert finished.status == "succeeded", finished.error
    assert finished.result is not None and finished.result["solution_version"] == version.id
    assert loaded.solution_version(version.id).status == "active"


def test_empty_group_cannot_train(engine: Engine, group: str) -> None:
    engine.create_solution(group, "popular", {"recipe": "popularity-count"})
    with pytest.raises(InvalidInput, match="training needs at least"):
        engine.train(group, "popular")


def test_artifacts_reload_in_a_new_process(loaded: Engine, group: str) -> None:
    loaded.create_solution(group, "popular", {"recipe": "popularity-count"})
    version = loaded.train(group, "popular")
    here = loaded.recommender.resolve_version(group, solution="popular")
    expected = here.model.score(Query.single(here.users.get("u0"), [3, 4]))
    script = (
        "import json; from pathlib import Path\n"
        "from tastebud.serving import load_version\nfrom tastebud.recipes import Query\n"
        f"v = load_version(Path({str(loaded.settings.artifacts / version.id)!r}), 'x')\n"
        "print(json.dumps(v.model.score(Query.single(v.users.get('u0'), [3, 4])).tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    np.testing.assert_allclose(np.array(json.loads(out), dtype=np.float32), expected)


def test_version_of_another_group_is_not_found(loaded: Engine, group: str, tmp_path: Path) -> None:
    loaded.create_solution(group, "popular", {"recipe": "popularity-count"})
    version = loaded.train(group, "popular")
    loaded.create_group(group + "x")
    try:
        with pytest.raises(NotFound, match="not in group"):
            loaded.recommender.resolve_version(group + "x", version_id=version.id)
    finally:
        loaded.delete_group(group + "x")


def test_impressions_in_the_store_become_negatives(engine: Engine, group: str) -> None:
    from tastebud.jobs.training import load_training_data
    from tastebud.store import Event, Record
    from tastebud.training import SolutionDataConfig

    engine.store.put_records(group, "items", [Record("b"), Record("c")])
    engine.store.put_events(group, [
        Event("a", 100, "u1", impression="a|b|c|unknown"), Event("b", 200, "u2"),
        Event("c", 300, "u1"),
    ])  # fmt: skip
    data, users, items = load_training_data(
        engine.store, group, SolutionDataConfig(), up_to_seq=engine.store.last_seq(group)
    )
    pairs = {(users.id(int(u)), items.id(int(i)))
             for u, i in zip(data.negative_users, data.negative_items, strict=True)}  # fmt: skip
    assert pairs == {
        ("u1", "b")
    }  # shown to u1; "a" and "c" were interacted with, "unknown" is not an item
