"""Serving commands: ``serve`` runs the HTTP API; ``demo`` shows the whole product on fresh data."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
import uvicorn
from fastapi import FastAPI
from rich.progress import TaskID
from rich.table import Table

from tastebud.cli._common import console, die, engine, fail_cleanly, progress_bar, state
from tastebud.engine import Engine
from tastebud.schema import DatasetKind
from tastebud.settings import Settings

DEMO_GROUP = "demo"
DEMO_SCHEMAS = {
    "items": {
        "TITLE": "textual",
        "GENRES": "categorical",
        "YEAR": "numerical",
        "PRICE": "numerical",
    },
    "users": {"TIER": "categorical", "AGE_GROUP": "categorical"},
    "interactions": {},
}


def app_from_env() -> FastAPI:
    """uvicorn factory for multi-worker serving: each worker reads TASTEBUD_* itself."""
    from tastebud.api.app import create_app

    return create_app(Settings())


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (use PostgreSQL for >1).")] = 1,
) -> None:
    """Run the HTTP API (OpenAPI at /docs and /openapi.json) until interrupted."""
    settings = state(ctx).settings()
    host = host or settings.api.host
    port = port or settings.api.port
    with engine(ctx) as eng:
        token = eng.init()
    if token:
        console.print(f"admin token (saved to {settings.home / 'admin.token'}): {token}")
    console.print(f"tastebud API on http://{host}:{port}  (store: {settings.store_url})")
    if workers == 1:
        from tastebud.api.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return
    # Each worker process builds its own settings from the environment.
    os.environ["TASTEBUD_HOME"] = str(settings.home)
    if settings.database_url:
        os.environ["TASTEBUD_DATABASE_URL"] = settings.database_url
    uvicorn.run("tastebud.cli.serve:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning")  # fmt: skip


def demo(
    ctx: typer.Context,
    keep_serving: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep the API running afterwards.")
    ] = True,
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 2000,
    items: Annotated[int, typer.Option(help="Synthetic items.")] = 800,
    seed: Annotated[int, typer.Option(help="Random seed of the generator.")] = 0,
    port: Annotated[int | None, typer.Option(help="API port (default 8765).")] = None,
) -> None:
    """Generate a realistic data set, import it, serve the API and send live events through it."""
    from tastebud.api.app import create_app
    from tastebud.client import Client
    from tastebud.demo import generate

    settings = state(ctx).settings()
    port = port or settings.api.port
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
        token = _demo_token(eng)
        _load(eng, files)
        server = _start_server(create_app(settings, engine=eng), settings.api.host, port)
        url = f"http://{settings.api.host}:{port}"
        try:
            _show_popular(eng, data.items)
            with Client(url, token=token, group=DEMO_GROUP) as client, fail_cleanly():
                _show_live_events(client, data.items, data.interactions)
            console.print(
                "[dim]Personalized recommendations appear here once the recipes are trained "
                "(recipes are the next milestone); the API, imports and live events above "
                "are real.[/]"
            )
            if keep_serving:
                console.rule()
                console.print(f"API: {url}   docs: {url}/docs   token: {token}")
                console.print(
                    f"try: curl -H 'Authorization: Bearer {token}' "
                    f"{url}/v1/dataset-groups/{DEMO_GROUP}/status"
                )
                console.print("serving until Ctrl-C")
                while server.is_alive():
                    server.join(0.5)
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            _stop_server(server)


def _demo_token(eng: Engine) -> str:
    if any(t.name == "demo" for t in eng.list_tokens()):
        eng.revoke_token("demo")
    return eng.create_token("demo", scope="admin")


def _load(eng: Engine, files: dict[str, Path]) -> None:
    eng.ensure_group(DEMO_GROUP)
    for dataset, fields in DEMO_SCHEMAS.items():
        eng.put_schema(DEMO_GROUP, dataset, fields)  # type: ignore[arg-type]
    with progress_bar() as bar:
        datasets: tuple[DatasetKind, ...] = ("items", "users", "interactions")
        for dataset in datasets:
            task = bar.add_task(f"import {dataset}", total=1.0, note="")

            def on_progress(fraction: float, message: str, task: TaskID = task) -> None:
                bar.update(task, completed=fraction, note=message)

            result = eng.import_file(
                DEMO_GROUP,
                dataset,
                files[dataset],
                mode="full",
                on_progress=on_progress,
            )
            bar.update(task, completed=1.0, note=f"{result.accepted:,} rows, {result.seconds}s")


class _ServerThread(threading.Thread):
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        super().__init__(name="tastebud-api", daemon=True)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        self.server.run()


def _start_server(app: FastAPI, host: str, port: int) -> _ServerThread:
    thread = _ServerThread(app, host, port)
    thread.start()
    deadline = time.monotonic() + 15
    while not thread.server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            die(f"the API could not start on {host}:{port} (port in use? try --port)")
        time.sleep(0.05)
    return thread


def _stop_server(thread: _ServerThread) -> None:
    thread.server.should_exit = True
    thread.join(10)


def _show_live_events(client: object, items: pl.DataFrame, interactions: pl.DataFrame) -> None:
    """Send events for one user through the HTTP API and read them straight back."""
    from tastebud.client import Client

    assert isinstance(client, Client)
    titles = dict(zip(items["ITEM_ID"], items["TITLE"], strict=True))
    user = interactions["USER_ID"].value_counts(sort=True)["USER_ID"][0]
    seen = set(interactions.filter(pl.col("USER_ID") == user)["ITEM_ID"])
    fresh = [i for i in items["ITEM_ID"] if i not in seen][:2]
    sent = time.perf_counter()
    result = client.put_events(
        [{"itemId": fresh[0], "eventType": "click", "eventId": f"demo-{user}-1"},
         {"itemId": fresh[1], "eventType": "watch", "eventValue": 42.0,
          "eventId": f"demo-{user}-2"}],
        user_id=user, session_id=f"demo-session-{user}",
    )  # fmt: skip
    latest = client.recent_events(user, limit=5)
    elapsed_ms = (time.perf_counter() - sent) * 1000
    table = Table(title=f"user {user}: latest events, read back through the API")
    table.add_column("when")
    table.add_column("event")
    table.add_column("title")
    for event in latest:
        item_id = event["itemId"]
        table.add_row(time.strftime("%Y-%m-%d %H:%M", time.gmtime(event["timestamp"])),
                      event.get("eventType") or "", titles.get(item_id, item_id))  # fmt: skip
    console.print(table)
    console.print(
        f"live: sent 2 events (accepted {result['accepted']}, duplicates "
        f"{result['duplicates']}); written, committed and read back in {elapsed_ms:.0f} ms"
    )


def _show_popular(eng: Engine, items: pl.DataFrame) -> None:
    interactions = eng.store.read_interactions(DEMO_GROUP)
    vocabulary = eng.store.vocabulary(DEMO_GROUP, "item")
    last_week = interactions.filter(
        pl.col("timestamp") > pl.col("timestamp").max() - 7 * 86400,
        pl.col("event_type") == "watch",
    )
    top = last_week["item_index"].value_counts(sort=True).head(5)
    titles = dict(zip(items["ITEM_ID"], items["TITLE"], strict=True))
    table = Table(title="most watched titles in the data's last 7 days")
    table.add_column("title")
    table.add_column("watches", justify="right")
    for index, count in top.iter_rows():
        table.add_row(titles.get(vocabulary.id(index), "?"), str(count))
    console.print(table)
