"""Serving commands: ``serve`` runs the HTTP API; ``demo`` shows the whole product on fresh data."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from tastebud.cli._common import console, die, engine, state
from tastebud.observability import MULTIPROC_ENV, logging_config
from tastebud.settings import Settings


def app_from_env() -> FastAPI:
    """uvicorn factory for multi-worker serving: each worker reads TASTEBUD_* itself."""
    from tastebud.api.app import create_app

    return create_app(Settings())


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765).")] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes, one per core (SQLite or PostgreSQL).")
    ] = 1,
) -> None:
    """Run the HTTP API (OpenAPI at /docs and /openapi.json) until interrupted.

    SIGTERM or Ctrl+C stops it gracefully: requests in flight finish (within
    api.shutdown_grace_seconds) and accepted events are committed. Logs are JSON lines on stderr.
    """
    settings = state(ctx).settings()
    host = host or settings.api.host
    port = port or settings.api.port
    with engine(ctx) as eng:
        token = eng.init()
    if token:
        console.print(f"admin token (saved to {settings.home / 'admin.token'}): {token}")
    console.print(f"tastebud API on http://{host}:{port}  (store: {settings.store_url})")
    console.print(f"web console: http://{host}:{port}/console")
    options = _uvicorn_options(settings)
    if workers == 1:
        from tastebud.api.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, **options)
        return
    from tastebud.api.listeners import bind_address, run_workers

    try:  # first: nothing is changed (environment, logging) when the address is taken
        sock = bind_address(host, port)
    except OSError as exc:  # the address is taken, or not this machine's
        die(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    # Each worker process builds its own settings from the environment.
    os.environ["TASTEBUD_HOME"] = str(settings.home)
    if not settings.redis_url:  # one worker computes a changed user's answer for all
        from tastebud.serving.cache import remove_answers_file

        os.environ.setdefault("TASTEBUD_SERVING__SHARED_ANSWERS", "true")
        remove_answers_file(settings.home)
    os.environ["TASTEBUD_DEFAULT_GROUP"] = settings.default_group
    if settings.database_url:
        os.environ["TASTEBUD_DATABASE_URL"] = settings.database_url
    config = uvicorn.Config("tastebud.cli.serve:app_from_env", factory=True, host=host,
                            port=port, workers=workers, **options)  # fmt: skip
    with multiprocess_metrics(settings.home):
        run_workers(config, sock)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    from tastebud.api.admission import PROTOCOL

    return {
        "http": PROTOCOL,  # refuses overload before a request is read (api/admission.py)
        "log_config": logging_config(settings.api.log_level),
        "log_level": settings.api.log_level,
        "access_log": False,  # the app writes its own (route templates, request ids)
        "timeout_graceful_shutdown": math.ceil(settings.api.shutdown_grace_seconds),
    }


@contextlib.contextmanager
def multiprocess_metrics(home: Path) -> Iterator[None]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder under ``home`` for the workers.

    Workers are spawned (fresh interpreters) and read it when they first import the metrics; each
    writes its values there and /metrics on any of them adds up all. A folder set by the operator
    is kept as it is; ours goes when the server stops (folders of servers that died are cleared
    on the next start)."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    root = home / "metrics"
    _remove_stale(root)
    folder = (root / f"serve-{os.getpid()}").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    for folder in root.glob("serve-*"):
        pid = folder.name.removeprefix("serve-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


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
