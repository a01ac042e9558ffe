"""Retraining schedules: ``tastebud schedules create|list|show|pause|resume|delete`` and
``tastebud worker``, a process that runs due schedules (beside or instead of ``serve``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging.config
import signal
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from tastebud.cli._common import (
    console,
    engine,
    errors,
    group_option,
    print_json,
    resolve_group,
    state,
)
from tastebud.engine import Engine
from tastebud.jobs.schedules import METRICS, ScheduleSpec
from tastebud.observability import logging_config, multiprocess_dir
from tastebud.store import ScheduleRecord

schedules_app = typer.Typer(
    help="Retraining schedules: every interval, on a cron, or after N new events.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def _print(eng: Engine, records: list[ScheduleRecord], as_json: bool, *, one: bool) -> None:
    described = [eng.schedules.describe(record) for record in records]
    if as_json:
        print_json(described[0] if one else described)
        return
    table = Table(title="schedules")
    for column in ("name", "solution", "trigger", "next", "runs", "last run", "options"):
        table.add_column(column)
    for s in described:
        upcoming = "paused" if s["paused"] else _when(s["next_run_at"])
        if s["pending_events"] is not None and not s["paused"]:
            upcoming = f"{s['pending_events']}/{s['after_events']} events"
        last = s["last_run"] or {}
        outcome = f"{last.get('outcome', '-')} {_when(last.get('at'))}" if last else "-"
        if s["running"]:
            outcome = "running"
        table.add_row(s["name"], s["solution"], s["description"], upcoming, str(s["runs"]),
                      outcome, _options(s))  # fmt: skip
    console.print(table)
    for s in described:
        message = (s["last_run"] or {}).get("message")
        if message:
            console.print(f"[bold]{s['name']}[/]: {message}", highlight=False)


def _options(described: dict[str, Any]) -> str:
    options = []
    if described["max_train_seconds"] is not None:
        options.append(f"max {described['max_train_seconds']:g} s")
    if described["max_metric_drop"] is not None:
        options.append(f"{described['metric']} drop <= {described['max_metric_drop']:g}")
    return ", ".join(options) or "-"


@schedules_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The schedule's name, e.g. nightly.")],
    solution: Annotated[str, typer.Option(help="The solution to retrain.")],
    every: Annotated[str | None, typer.Option(help="Interval: 30s, 15m, 1h, 1h30m, 1d.")] = None,
    cron: Annotated[
        str | None, typer.Option(help="Cron expression in UTC, e.g. '0 3 * * *'.")
    ] = None,
    after_events: Annotated[
        int | None, typer.Option(help="Retrain once this many new interactions arrived.")
    ] = None,
    max_train_seconds: Annotated[
        float | None, typer.Option(help="Stop a slower training; the serving version stays.")
    ] = None,
    max_metric_drop: Annotated[
        float | None,
        typer.Option(help="Keep back (status gated) a version this much below the serving one."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help=f"The gate's metric: {', '.join(METRICS)} (ndcg@10).")
    ] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite a schedule of that name.")] = False,
    incremental: Annotated[
        bool, typer.Option(help="Grow the serving version with the new events (sequential).")
    ] = False,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Retrain a solution on a trigger; campaigns on ``latest`` follow each successful run.

    Runs happen in ``tastebud serve`` and in ``tastebud worker`` processes.
    """
    with engine(ctx) as eng:
        spec = ScheduleSpec.parse(
            every=every, cron=cron, after_events=after_events,
            max_train_seconds=max_train_seconds, max_metric_drop=max_metric_drop, metric=metric,
            incremental=incremental,
        )  # fmt: skip
        record = eng.schedules.create(resolve_group(ctx, group), name, solution=solution,
                                      spec=spec, replace=replace)  # fmt: skip
        _print(eng, [record], as_json, one=True)


@schedules_app.command("list")
def list_(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Schedules, their next run (or events still to come) and how the last run went."""
    with engine(ctx) as eng:
        _print(eng, eng.schedules.in_group(resolve_group(ctx, group)), as_json, one=False)


@schedules_app.command("show")
def show(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """One schedule."""
    with engine(ctx) as eng:
        _print(eng, [eng.schedules.get(resolve_group(ctx, group), name)], as_json, one=True)


@schedules_app.command("pause")
def pause(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """No new runs until resumed (a run in progress finishes)."""
    with engine(ctx) as eng:
        eng.schedules.pause(resolve_group(ctx, group), name)
    console.print(f"paused schedule {name}")


@schedules_app.command("resume")
def resume(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """Run again; time triggers restart from now."""
    with engine(ctx) as eng:
        record = eng.schedules.resume(resolve_group(ctx, group), name)
    upcoming = (
        f"next run {_when(record.next_run_at)}" if record.next_run_at else "waiting for events"
    )
    console.print(f"resumed schedule {name}: {upcoming}")


@schedules_app.command("delete")
def delete(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """Delete a schedule (its versions and jobs stay)."""
    with engine(ctx) as eng:
        eng.schedules.delete(resolve_group(ctx, group), name)
    console.print(f"deleted schedule {name}")


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run what is due now, then exit (e.g. from cron).")
    ] = False,
    only_group: Annotated[
        list[str] | None, typer.Option(help="Run only this group's schedules (repeatable).")
    ] = None,
    poll_seconds: Annotated[
        float | None, typer.Option(help="How often to look for due runs (default 5).")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run due retraining schedules until stopped (Ctrl+C, SIGTERM).

    Any number of workers (and ``serve`` processes) may share a store: each run is claimed by
    one of them. Set TASTEBUD_SCHEDULES__RUN_IN_SERVE=false to leave the runs to workers.
    Logs are JSON lines on stderr.
    """
    settings = state(ctx).settings()
    section = settings.schedules.model_copy(update={
        k: v for k, v in {"groups": only_group, "poll_seconds": poll_seconds}.items() if v
    })  # fmt: skip
    settings = settings.model_copy(update={"schedules": section})
    if not once:  # --once prints its outcome; a long-running worker logs like the server
        logging.config.dictConfig(logging_config(settings.api.log_level))
    with engine(ctx, settings) as eng:
        if once:
            reports = eng.scheduler.run_due()
            if as_json:
                print_json([dataclasses.asdict(report) for report in reports])
            else:
                for r in reports:
                    console.print(f"{r.group}/{r.schedule}: {r.outcome} job={r.job_id} "
                                  f"version={r.version_id} {r.message or ''}")  # fmt: skip
                console.print(f"{len(reports)} run(s)")
            return
        if metrics_port is not None:
            _serve_metrics(metrics_port)
        _run_until_signalled(eng)


def _run_until_signalled(eng: Engine) -> None:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    eng.scheduler.start()
    errors.print(f"tastebud worker {eng.scheduler.owner} running schedules; Ctrl+C stops it")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        eng.scheduler.stop()  # a training in progress stops; its run is released, not lost
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_metrics(port: int) -> None:
    """``/metrics`` of this process (or, under PROMETHEUS_MULTIPROC_DIR, of every process)."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)
