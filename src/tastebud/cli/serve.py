"""Serving commands: ``serve`` runs the HTTP API; ``demo`` shows the whole product on fresh data."""

from __future__ import annotations

import os
import threading
import time
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from tastebud.cli._common import console, die, engine, state
from tastebud.settings import Settings


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


class ServerThread(threading.Thread):
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        super().__init__(name="tastebud-api", daemon=True)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        self.server.run()


def start_server(app: FastAPI, host: str, port: int) -> ServerThread:
    thread = ServerThread(app, host, port)
    thread.start()
    deadline = time.monotonic() + 15
    while not thread.server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            die(f"the API could not start on {host}:{port} (port in use? try --port)")
        time.sleep(0.05)
    return thread


def stop_server(thread: ServerThread) -> None:
    thread.server.should_exit = True
    thread.join(10)
