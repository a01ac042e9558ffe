"""Solutions, training and versions: ``tastebud solutions …``, ``tastebud train``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tastebud.cli._common import (
    console,
    engine,
    group_option,
    key_values,
    print_json,
    progress_bar,
    resolve_group,
)
from tastebud.store import SolutionVersionRecord

solutions_app = typer.Typer(
    help="Solutions: a recipe plus its configuration.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@solutions_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The solution's name, e.g. for-you.")],
    recipe: Annotated[str, typer.Option(help="popularity-count, user-personalization, …")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE hyperparameter.")
    ] = None,
    event_weight: Annotated[
        list[str] | None,
        typer.Option(help="TYPE=WEIGHT; when given, only these event types are used."),
    ] = None,
    min_event_value: Annotated[
        float | None, typer.Option(help="Ignore interactions with a smaller EVENT_VALUE.")
    ] = None,
    hpo_trials: Annotated[
        int | None, typer.Option(help="Tune hyperparameters with this many Optuna trials.")
    ] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite a solution of that name.")] = False,
    group: str | None = group_option(),
) -> None:
    """Declare a solution (validated now: recipe, hyperparameters, event weights)."""
    data: dict[str, Any] = {}
    if event_weight:
        data["event_weights"] = key_values(event_weight, "--event-weight")
    if min_event_value is not None:
        data["min_event_value"] = min_event_value
    body: dict[str, Any] = {"recipe": recipe, "params": key_values(param, "--param"), "data": data}
    if hpo_trials:
        body["hpo"] = {"trials": hpo_trials}
    with engine(ctx) as eng:
        eng.create_solution(resolve_group(ctx, group), name, body, replace=replace)
    console.print(f"solution [bold]{name}[/] ({recipe}) saved; train it: tastebud train {name}")


@solutions_app.command("list")
def list_(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Solutions and their newest version."""
    with engine(ctx) as eng:
        name = resolve_group(ctx, group)
        rows = [(s, eng.list_solution_versions(name, s.name)) for s in eng.list_solutions(name)]
    if as_json:
        print_json([{"name": s.name, "recipe": s.recipe, "config": s.body,
                     "versions": [v.id for v in versions]} for s, versions in rows])  # fmt: skip
        return
    table = Table(title=f"solutions in {name}")
    for column in ("name", "recipe", "newest version", "status", "ndcg@10"):
        table.add_column(column)
    for solution, versions in rows:
        newest = versions[0] if versions else None
        table.add_row(solution.name, solution.recipe, *_version_cells(newest))
    console.print(table)


@solutions_app.command("delete")
def delete(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """Delete a solution and its versions' records."""
    with engine(ctx) as eng:
        eng.delete_solution(resolve_group(ctx, group), name)
    console.print(f"deleted solution {name}")


@solutions_app.command("versions")
def versions(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """A solution's versions, newest first, with their metrics."""
    with engine(ctx) as eng:
        group_name = resolve_group(ctx, group)
        eng.get_solution(group_name, name)  # an unknown solution is an error, not an empty list
        found = eng.list_solution_versions(group_name, name)
    if as_json:
        print_json([_version_json(v) for v in found])
        return
    table = Table(title=f"versions of {name}")
    for column in ("version", "status", "ndcg@10", "train s", "note"):
        table.add_column(column)
    for version in found:
        cells = _version_cells(version)
        note = version.body.get("gated") or version.body.get("error") or ""  # why not active
        table.add_row(version.id, cells[1], cells[2], str(version.body.get("train_seconds", "")),
                      note)  # fmt: skip
    console.print(table)


def train(
    ctx: typer.Context,
    solution: Annotated[str, typer.Argument(help="The solution to train.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    incremental: Annotated[
        bool,
        typer.Option(
            help="Grow the active version with the events since it (sequential): a fraction "
            "of a full fit, no offline metrics."
        ),
    ] = False,
    full_fallback: Annotated[
        bool, typer.Option(help="With --incremental: a full fit when there is nothing to grow.")
    ] = False,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="Train on N processes with PyTorch DDP (sequential only; gloo on CPU, NCCL on "
            "GPU), each on cores/N threads; progress on stderr."
        ),
    ] = None,
) -> None:
    """Train a new version of a solution now (progress bar), with its offline metrics."""
    if nproc is not None and nproc != 1:
        from tastebud.train import train_in_processes  # torch loads only here

        if incremental:
            raise typer.BadParameter("--incremental trains in this process: leave out --nproc")
        with engine(ctx) as eng:
            version = train_in_processes(eng, resolve_group(ctx, group), solution, nproc=nproc,
                                         seed=seed)  # fmt: skip
    else:
        version = _train_here(ctx, solution, seed=seed, group=group, quiet=as_json,
                              incremental=incremental, full_fallback=full_fallback)  # fmt: skip
    if as_json:
        print_json(_version_json(version))
        return
    metrics = version.body.get("metrics") or {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "@" in k)
    grown = version.body.get("incremental") or {}
    if "parent" in grown:
        shown = f"grown from {grown['parent']}: {grown.get('users')} users' new events"
    elif "fallback" in grown:
        shown = f"full fit ({grown['fallback']}) {shown}"
    console.print(f"[green]version {version.id} active[/] "
                  f"(fit {version.body.get('train_seconds')} s) {shown}")  # fmt: skip


def _train_here(
    ctx: typer.Context, solution: str, *, seed: int, group: str | None, quiet: bool,
    incremental: bool = False, full_fallback: bool = False,
) -> SolutionVersionRecord:  # fmt: skip
    with engine(ctx) as eng, progress_bar(enabled=not quiet) as bar:
        task = bar.add_task(f"train {solution}", total=1.0, note="")

        def on_progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, note=message)

        version = eng.train(
            resolve_group(ctx, group), solution, seed=seed, on_progress=on_progress,
            incremental=incremental, full_fallback=full_fallback,
        )  # fmt: skip
        bar.update(task, completed=1.0, note="done")
    return version


def _version_json(version: SolutionVersionRecord) -> dict[str, Any]:
    return {"id": version.id, "solution": version.solution, "status": version.status,
            **dict(version.body)}  # fmt: skip


def _version_cells(version: SolutionVersionRecord | None) -> tuple[str, str, str]:
    if version is None:
        return "-", "untrained", "-"
    ndcg = (version.body.get("metrics") or {}).get("ndcg@10")
    return version.id, version.status, "-" if ndcg is None else f"{ndcg:.4f}"
