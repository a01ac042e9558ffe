"""``tastebud demo``: the whole product on fresh synthetic data, in one command.

Generate a streaming-service data set, import it, train three solutions (for-you, more like this,
trending), serve the API on 127.0.0.1, then ask it for recommendations, send live events through
it and show the next answer change.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.progress import TaskID
from rich.table import Table

from tastebud.cli._common import console, die, engine, fail_cleanly, progress_bar, state
from tastebud.cli.serve import start_server, stop_server
from tastebud.demo.scenarios import DEFAULT, SCENARIOS
from tastebud.demo.scenarios import run as run_scenario
from tastebud.engine import Engine
from tastebud.errors import InvalidInput
from tastebud.schema import DatasetKind

DEMO_GROUP = "demo"
CAMPAIGN = "home"
DEMO_SCHEMAS = {
    "items": {"TITLE": "textual", "GENRES": "categorical", "YEAR": "numerical",
              "PRICE": "numerical"},
    "users": {"TIER": "categorical", "AGE_GROUP": "categorical"},
    "interactions": {},
}  # fmt: skip
# A watch says more than a click, a click more than a view.
EVENT_WEIGHTS = {"watch": 1.0, "click": 0.5, "view": 0.1}
DEMO_SOLUTIONS: dict[str, dict[str, Any]] = {
    "for-you": {"recipe": "user-personalization", "params": {"algorithm": "ease"},
                "data": {"event_weights": EVENT_WEIGHTS}},
    "more-like-this": {"recipe": "similar-items", "params": {"mode": "cosine"},
                       "data": {"event_weights": {"watch": 1.0, "click": 0.5}}},
    "trending": {"recipe": "trending-now", "data": {"event_weights": EVENT_WEIGHTS}},
}  # fmt: skip


def demo(
    ctx: typer.Context,
    keep_serving: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep the API running afterwards.")
    ] = True,
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 2000,
    items: Annotated[int, typer.Option(help="Synthetic items.")] = 800,
    seed: Annotated[int, typer.Option(help="Random seed of the generator.")] = 0,
    port: Annotated[int | None, typer.Option(help="API port (default 8765).")] = None,
    scenario: Annotated[
        str, typer.Option(help="The deployment to show: " + ", ".join(SCENARIOS) + ".")
    ] = DEFAULT,
) -> None:
    """Generate data, import it, train, serve the API and show live recommendations."""
    from tastebud.api.app import create_app
    from tastebud.client import Client
    from tastebud.demo import generate

    settings = state(ctx).settings()
    if port is not None:  # every scenario serves where --port says
        api = settings.api.model_copy(update={"port": port})
        settings = settings.model_copy(update={"api": api})
    try:
        if run_scenario(scenario, settings, seed=seed, serve=keep_serving):
            return
    except InvalidInput as error:
        die(error.message)
    port = settings.api.port
    console.rule("[bold]tastebud demo")
    started = time.perf_counter()
    data = generate(n_users=users, n_items=items, seed=seed)
    files = data.write_csv(settings.home / "demo-data")
    console.print(
        f"generated {data.interactions.height:,} interactions, {data.items.height:,} items, "
        f"{data.users.height:,} users in {time.perf_counter() - started:.1f}s "
        f"-> {files['interactions'].parent}"
    )
    with engine(ctx) as eng:
        eng.init()
        token = demo_token(eng, "demo")
        load_files(eng, DEMO_GROUP, DEMO_SCHEMAS, files)
        train_solutions(eng, DEMO_GROUP, DEMO_SOLUTIONS)
        eng.create_campaign(DEMO_GROUP, CAMPAIGN, "for-you", replace=True)
        console.print(f"campaign [bold]{CAMPAIGN}[/] deploys for-you (its newest version)")
        server = start_server(create_app(settings, engine=eng), settings.api.host, port)
        url = f"http://{settings.api.host}:{port}"
        try:
            with Client(url, token=token, group=DEMO_GROUP) as client, fail_cleanly():
                _tour(client, data.items, data.interactions)
                _batch(client, data.users, data.items, settings.home / "demo-data")
            if keep_serving:
                serve_until_interrupted(
                    url, server.is_alive, _try(url, token), token=token, group=DEMO_GROUP
                )
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            stop_server(server)


def demo_token(eng: Engine, name: str) -> str:
    """A fresh admin token ``name`` (an older one of that name is revoked)."""
    if any(t.name == name for t in eng.list_tokens()):
        eng.revoke_token(name)
    return eng.create_token(name, scope="admin")


def load_files(
    eng: Engine, group: str, schemas: dict[str, dict[str, str]], files: dict[str, Path]
) -> None:
    """Declare ``schemas`` in ``group`` and import ``files`` (FULL), items and users first."""
    eng.ensure_group(group)
    for dataset, fields in schemas.items():
        eng.put_schema(group, dataset, fields)  # type: ignore[arg-type]
    with progress_bar() as bar:
        datasets: tuple[DatasetKind, ...] = ("items", "users", "interactions")
        for dataset in datasets:
            task = bar.add_task(f"import {dataset}", total=1.0, note="")

            def on_progress(fraction: float, message: str, task: TaskID = task) -> None:
                bar.update(task, completed=fraction, note=message)

            result = eng.import_file(
                group, dataset, files[dataset], mode="full", on_progress=on_progress
            )
            bar.update(task, completed=1.0, note=f"{result.accepted:,} rows, {result.seconds}s")


def train_solutions(eng: Engine, group: str, solutions: dict[str, dict[str, Any]]) -> None:
    """Create (or replace) and train each solution; print their offline metrics."""
    table = Table(title="trained solutions (offline metrics: leave-last-out, full ranking)")
    for column in ("solution", "recipe", "ndcg@10", "hr@10", "fit s"):
        table.add_column(column)
    with progress_bar() as bar:
        for name, body in solutions.items():
            eng.create_solution(group, name, body, replace=True)
            task = bar.add_task(f"train {name}", total=1.0, note="")

            def on_progress(fraction: float, message: str, task: TaskID = task) -> None:
                bar.update(task, completed=fraction, note=message)

            version = eng.train(group, name, on_progress=on_progress)
            bar.update(task, completed=1.0, note="active")
            metrics = version.body.get("metrics") or {}
            scores = [f"{metrics.get(k, 0):.3f}" for k in ("ndcg@10", "hr@10")]
            table.add_row(name, body["recipe"], *scores, str(version.body["train_seconds"]))
    console.print(table)


def _tour(client: Any, items: pl.DataFrame, interactions: pl.DataFrame) -> None:
    """A regular user's recommendations; a new visitor's before and after three live watches;
    similar items; trends."""
    titles = dict(zip(items["ITEM_ID"], items["TITLE"], strict=True))
    watches = interactions.filter(pl.col("EVENT_TYPE") == "watch")
    user = str(watches["USER_ID"].value_counts(sort=True)["USER_ID"][2])
    history = watches.filter(pl.col("USER_ID") == user)["ITEM_ID"].to_list()
    _titles_table(f"user {user}: last watched", [(i, None) for i in history[-5:]], titles)
    ask = functools.partial(client.campaign_recommend, CAMPAIGN, num_results=5)
    _titles_table(f"for {user} (campaign {CAMPAIGN})", _pairs(ask(user)), titles)
    _reasons_table(f"why (explain: true) for {user}", ask(user, explain=True), titles)

    visitor = "new-visitor"
    cold = ask(visitor)
    _titles_table(f"for {visitor} (no history yet: popular titles)", _pairs(cold), titles)
    genre, fresh = _genre_hits(items, watches)
    # The synthetic data lives in its own past: its clock continues a minute after its last event.
    now = int(interactions["TIMESTAMP"].max()) + 60  # type: ignore[arg-type]
    events = [{"itemId": item, "eventType": "watch", "eventValue": 3600.0, "sentAt": now + i}
              for i, item in enumerate(fresh)]  # fmt: skip
    sent = time.perf_counter()
    client.put_events(events, user_id=visitor)
    warm = ask(visitor)
    elapsed_ms = (time.perf_counter() - sent) * 1000
    console.print(f"live: {visitor} watches {len(fresh)} {genre} titles "
                  f"({', '.join(titles[i] for i in fresh)}); events committed and the next "
                  f"answer computed in {elapsed_ms:.0f} ms, without retraining:")  # fmt: skip
    console.print(f"campaign cache: {cold['cache']} before, {warm['cache']} after the events")
    _titles_table(f"for {visitor}, after those watches", _pairs(warm), titles)

    similar = client.similar_items(fresh[0], solution="more-like-this", num_results=5)
    _titles_table(f"more like {titles[fresh[0]]}", _pairs(similar), titles)
    trending = client.recommend(None, solution="trending", num_results=5)
    _titles_table("trending now", _pairs(trending), titles)


def _batch(client: Any, users: pl.DataFrame, items: pl.DataFrame, folder: Path) -> None:
    """A batch job through the API: top 10 for every user, one JSON line each."""
    source, output = folder / "batch-users.jsonl", folder / "batch-for-you.jsonl"
    source.write_text("".join(f'{{"userId": "{u}"}}\n' for u in users["USER_ID"]))
    started = time.perf_counter()
    job = client.start_batch_job(str(source), str(output), solution="for-you", num_results=10,
                                 poll_interval=0.1)  # fmt: skip
    result = job["result"] or {}
    console.print(
        f"batch job: {result.get('lines', 0):,} users answered ({result.get('errors', 0)} errors) "
        f"in {time.perf_counter() - started:.1f}s -> {output} (one JSON line per user)"
    )
    first = json.loads(output.read_text().splitlines()[0])
    answer = first["output"]
    pairs = list(zip(answer["recommendedItems"], answer["scores"], strict=True))[:5]
    titles = dict(zip(items["ITEM_ID"], items["TITLE"], strict=True))
    _titles_table(f"batch answer for {first['input']['userId']} (first line)", pairs, titles)


def _genre_hits(items: pl.DataFrame, watches: pl.DataFrame) -> tuple[str, list[str]]:
    """A mid-popular genre (not the obvious top one) and its three most watched titles."""
    genres = items.select("ITEM_ID", pl.col("GENRES").str.split("|")).explode("GENRES")
    counted = watches.join(genres, on="ITEM_ID")
    ranked = counted["GENRES"].value_counts(sort=True)["GENRES"]
    genre = str(ranked[min(4, len(ranked) - 1)])
    hits = counted.filter(pl.col("GENRES") == genre)["ITEM_ID"].value_counts(sort=True)
    return genre, [str(i) for i in hits["ITEM_ID"].head(3)]


def _pairs(answer: Any) -> list[tuple[str, float | None]]:
    return [(r["itemId"], r["score"]) for r in answer["itemList"]]


def _titles_table(title: str, rows: list[tuple[str, float | None]], titles: dict[str, str]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("title")
    table.add_column("item")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(rows, 1):
        table.add_row(str(rank), titles.get(item, "?"), item,
                      "" if score is None else f"{score:.3f}")  # fmt: skip
    console.print(table)


def _reasons_table(title: str, answer: Any, titles: dict[str, str]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("title")
    table.add_column("reasons")
    for item in answer["itemList"][:3]:
        texts = [
            # Reasons name the user's past items by id; show their titles instead.
            reason["text"].replace(reason["itemId"], titles.get(reason["itemId"], "?"))
            if reason.get("itemId")
            else reason["text"]
            for reason in item.get("reasons") or []
        ]
        table.add_row(titles.get(item["itemId"], "?"), "; ".join(texts[:2]))
    console.print(table)


def _try(url: str, token: str) -> str:
    return (
        f"try: curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
        f'-d \'{{"userId": "u1"}}\' '
        f"{url}/v1/dataset-groups/{DEMO_GROUP}/campaigns/{CAMPAIGN}/recommendations"
    )


def serve_until_interrupted(
    url: str, alive: Callable[[], bool], hint: str, *, token: str, group: str
) -> None:
    """Say where the API and the console (on ``group``) are and what to try (``hint``), then
    wait while it serves."""
    console.rule()
    console.print(f"API: {url}   docs: {url}/docs   token: {token}")
    console.print(f"console: {url}/console/groups/{group}/  (sign in with the token above)")
    console.print(hint, highlight=False, markup=False, soft_wrap=True)
    console.print("serving until Ctrl-C")
    while alive():
        time.sleep(0.5)
