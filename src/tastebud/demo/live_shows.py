"""``tastebud demo --scenario live-shows``: rank the channels on air for each viewer, end to end.

A live-streaming app's history (``live_world.py``: channels, their shows, viewers with hidden
tastes, 60 days of sessions) goes into the ``live-shows`` group. Features are declared (viewers
now, long sessions, how recently the viewer watched the channel, 60-day affinities, completion),
a ``ranker`` learns from them and from a popularity base, and an experiment splits viewers
between the app's rule order (most watched first) and the ranker. Simulated viewers then open
the app over HTTP: each gets the channels on air ordered by their arm, joins one or none as
their hidden tastes say, and the join is sent back with the answer's ``recommendationId``. The
report tells whether the ranker earned its place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import yaml
from rich.table import Table

from tastebud.api.app import create_app
from tastebud.cli._common import console, fail_cleanly
from tastebud.cli.demo import demo_token, load_files, serve_until_interrupted, train_solutions
from tastebud.cli.experiments import print_report
from tastebud.cli.serve import start_server, stop_server
from tastebud.client import Client
from tastebud.demo import live_world
from tastebud.demo.synthetic import write_csv
from tastebud.engine import Engine
from tastebud.settings import Settings

GROUP = "live-shows"
EXPERIMENT = "ranker-vs-rules"
RULES, RANKER = "most-watched", "ranked"
SCHEMAS = {"items": {"CATEGORY": "categorical", "CREATION_TIMESTAMP": "timestamp"},
           "users": {}, "interactions": {}}  # fmt: skip
FEATURES = """
features:
  - {name: viewers_5m, kind: counter, entity: item, aggregation: distinct_users, window: 5m}
  - {name: joins_1h, kind: counter, entity: item, aggregation: count, window: 1h,
     event_types: [join]}
  - {name: long_sessions_1h, kind: sessions, min_minutes: 10, window: 1h}
  - {name: channel_recency, kind: counter, entity: user_item, aggregation: last_seen}
  - {name: watched_7d, kind: counter, entity: user_item, aggregation: sum, window: 7d,
     event_types: [leave]}
  - {name: completion_7d, kind: rate, entity: item, numerator: [complete], denominator: [join],
     prior_strength: 20, window: 7d}
  - {name: channel_affinity_60d, kind: batch, entity: user_item, aggregation: share, days: 60,
     event_types: [join]}
  - {name: category_affinity_60d, kind: batch, entity: user_item_field, field: CATEGORY,
     aggregation: share, days: 60, event_types: [join]}
  - {name: hour, kind: request, source: hour_of_day}
"""
# The ranker reads every declared feature.
FEATURE_NAMES = tuple(f["name"] for f in yaml.safe_load(FEATURES)["features"])
SOLUTIONS: dict[str, dict[str, Any]] = {
    # The app's rule order: the channels most watched so far first.
    RULES: {"recipe": "popularity-count"},
    RANKER: {"recipe": "ranker", "data": {"event_weights": {"join": 1.0}}, "params": {
        "bases": {"pop": {"recipe": "popularity-count"}},
        "features": list(FEATURE_NAMES), "exclude_seen": False, "candidates": 100,
        "n_estimators": 200, "min_data_in_leaf": 50}},
}  # fmt: skip
# A join is the metric; the deadline keeps the answer in the app's budget whatever happens.
CAMPAIGNS: dict[str, dict[str, Any]] = {RULES: {"min_interactions": 0, "cache_ttl_seconds": 0},
             RANKER: {"min_interactions": 0, "cache_ttl_seconds": 0, "fallback": "rules",
                      "deadline_ms": 150}}  # fmt: skip


def run(
    settings: Settings,
    *,
    seed: int,
    serve: bool,
    viewers: int = 2000,
    visits: int = 2000,
    days: int = 60,
) -> dict[str, Any]:
    """Generate, import, declare features, train, run the experiment on simulated viewers over
    HTTP (``visits`` of them, each viewer once), print the report; with ``serve``, keep the API
    up until Ctrl+C. Returns the report and the joins the simulation sent per arm."""
    console.rule("[bold]tastebud demo: ranking live shows, ranker against rules")
    now = int(time.time())
    world, frames = live_world.generate(n_viewers=viewers, visits_per_viewer=25.0 * days / 60,
                                        days=days, now=now, seed=seed)  # fmt: skip
    files = write_csv(settings.home / "live-shows-data", frames)
    sessions = frames["interactions"].filter(frames["interactions"]["EVENT_TYPE"] == "join")
    console.print(
        f"generated {len(world.host_ids)} channels, {len(world.viewer_ids):,} viewers, "
        f"{sessions.height:,} sessions over {days} days; {len(world.on_air(now))} on air now"
    )
    with fail_cleanly(), _api(settings) as (eng, url, alive):
        token = demo_token(eng, "live-shows-demo")
        if any(group.name == GROUP for group in eng.list_groups()):
            console.print(f"replacing the group {GROUP!r} of an earlier run")
            eng.delete_group(GROUP)
        load_files(eng, GROUP, SCHEMAS, files)
        _declare_features(eng)
        train_solutions(eng, GROUP, SOLUTIONS)
        _importances(eng)
        for name, config in CAMPAIGNS.items():
            eng.create_campaign(GROUP, name, name, config=config)
        arms = {"control": (RULES, 50.0), "treatment": (RANKER, 50.0)}
        eng.experiments.create(GROUP, EXPERIMENT, arms, metric="join", attribution_window="1h")
        eng.experiments.start(GROUP, EXPERIMENT)
        _warm_up(eng, world)
        with Client(url, token=token, group=GROUP) as client:
            joins = simulate(client, world, visits=visits, seed=seed)
            report = client.experiment_report(EXPERIMENT)
        print_report(report)
        if serve:
            path = f"{url}/v1/dataset-groups/{GROUP}/experiments/{EXPERIMENT}/report"
            hint = f"try: curl -H 'Authorization: Bearer {token}' {path}"
            serve_until_interrupted(url, alive, hint, token=token, group=GROUP)
    return {"report": report, "joins": joins}


def simulate(client: Client, world: live_world.World, *, visits: int, seed: int) -> dict[str, int]:
    """``visits`` viewers (each once) open the app: the channels on air now, ordered by their
    arm; a join goes back with the answer's ``recommendationId``. Returns the joins per arm."""
    rng = np.random.default_rng(seed + 1)
    index = {host: i for i, host in enumerate(world.host_ids)}
    joined: dict[str, int] = {}
    started = time.monotonic()
    viewers = rng.permutation(len(world.viewer_ids))[:visits].tolist()
    for visit, viewer in enumerate(viewers):
        now = int(time.time())
        on_air = [world.host_ids[h] for h in world.on_air(now)]
        answer = client.experiment_rank(EXPERIMENT, world.viewer_ids[viewer], on_air)
        order = np.array([index[i["itemId"]] for i in answer["itemList"]], dtype=np.int64)
        position = world.choose(viewer, order, rng)
        if position is not None:
            joined[answer["arm"]] = joined.get(answer["arm"], 0) + 1
            event = {"itemId": world.host_ids[order[position]], "eventType": "join",
                     "sentAt": now, "recommendationId": answer["recommendationId"],
                     "eventId": f"live-demo-{seed}-{visit}"}  # fmt: skip
            client.put_events([event], user_id=world.viewer_ids[viewer],
                              session_id=f"demo-{visit}")  # fmt: skip
        if (visit + 1) % 500 == 0:
            rate = (visit + 1) / (time.monotonic() - started)
            console.print(f"  {visit + 1:,} visits ({rate:.0f}/s), joins per arm {joined}")
    return joined


def _warm_up(eng: Engine, world: live_world.World) -> None:
    """Read the features once, as the first viewer would: the feature store loads the recent
    events of the group now, not within that viewer's deadline."""
    eng.features.online(GROUP, FEATURE_NAMES, user_id=world.viewer_ids[0],
                        item_ids=world.host_ids)  # fmt: skip


def _declare_features(eng: Engine) -> None:
    declared = eng.features.apply(GROUP, FEATURES)
    summary = eng.features.compute(GROUP)
    console.print(f"declared {len(declared.columns)} feature columns (version "
                  f"{declared.version}); batch features computed: {summary}")  # fmt: skip


def _importances(eng: Engine) -> None:
    version = eng.list_solution_versions(GROUP, RANKER)[0]
    model = eng.recommender.versions.get(version.id).model
    gains: dict[str, float] = model.importances()  # type: ignore[attr-defined]
    table = Table("feature", "gain share", title="what the ranker learned from (top 8)")
    total = sum(gains.values()) or 1.0
    for name, gain in list(gains.items())[:8]:
        table.add_row(name, f"{gain / total:.1%}")
    console.print(table)


@contextmanager
def _api(settings: Settings) -> Iterator[tuple[Engine, str, Callable[[], bool]]]:
    """An engine served over HTTP on the configured host and port, stopped on exit."""
    with Engine(settings) as eng:
        eng.init()
        server = start_server(create_app(settings, engine=eng), settings.api.host,
                              settings.api.port)  # fmt: skip
        try:
            yield eng, f"http://{settings.api.host}:{settings.api.port}", server.is_alive
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            stop_server(server)
