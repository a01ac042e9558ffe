"""``tastebud demo --scenario live-shows`` at a small size: features declared and computed, the
ranker trained on them, both arms of the experiment served over HTTP, and the report counting
exactly the joins the simulated viewers sent back."""

from __future__ import annotations

from pathlib import Path

from tastebud.demo import live_shows
from tastebud.engine import Engine
from tastebud.messaging.inbox import free_port
from tastebud.settings import Settings


def test_the_live_shows_demo_runs_the_experiment_end_to_end(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.api.port = free_port()
    outcome = live_shows.run(settings, seed=0, serve=False, viewers=200, visits=200, days=14)
    report, joins = outcome["report"], outcome["joins"]
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert set(arms) == {"control", "treatment"}
    assert sum(a["users"] for a in arms.values()) == 200  # each viewer once
    assert sum(a["exposures"] for a in arms.values()) == 200  # every answer logged
    assert {name: a["conversions"] for name, a in arms.items()} == {
        name: joins.get(name, 0) for name in arms}  # fmt: skip
    assert sum(joins.values()) > 0 and not report["sample_ratio"]["flagged"]
    assert "vs_control" in arms["treatment"]
    with Engine(settings) as engine:  # what the demo left behind answers as deployed
        ranked = engine.describe_campaign(live_shows.GROUP, live_shows.RANKER)
        assert ranked["source"] == "model"
        version = engine.list_solution_versions(live_shows.GROUP, live_shows.RANKER)[0]
        model = engine.recommender.versions.get(version.id).model
        importances = model.importances()  # type: ignore[attr-defined]
        assert any(name.startswith("feature.") and gain > 0
                   for name, gain in importances.items())  # fmt: skip
