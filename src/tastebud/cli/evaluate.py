"""``tastebud evaluate``: offline metrics of a recipe on interaction files (no store needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError
from rich.table import Table

from tastebud.cli._common import (
    console,
    die,
    fail_cleanly,
    key_values,
    print_json,
    progress_bar,
    state,
)
from tastebud.evaluation import PROTOCOLS, EvaluationProtocol, run_evaluation
from tastebud.text.items import CACHE_FOLDER as TEXT_CACHE_FOLDER
from tastebud.training import SolutionDataConfig, build_training_data, read_table


def evaluate(
    ctx: typer.Context,
    interactions: Annotated[
        Path, typer.Option(help="Interactions file: .csv, .csv.gz or .parquet.")
    ],
    recipe: Annotated[str, typer.Option(help="Recipe name, e.g. popularity-count.")],
    items: Annotated[Path | None, typer.Option(help="Items file (metadata, cold items).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE hyperparameter.")
    ] = None,
    protocol: Annotated[str, typer.Option(help=" or ".join(PROTOCOLS))] = "leave-last-out",
    seed: Annotated[int, typer.Option(help="Random seed for fitting and tuning.")] = 0,
    tune: Annotated[
        int, typer.Option(help="Optuna trials on the validation metric (0: no tuning).")
    ] = 0,
    event_weight: Annotated[
        list[str] | None,
        typer.Option(help="TYPE=WEIGHT; when given, only these event types are used."),
    ] = None,
    min_event_value: Annotated[
        float | None, typer.Option(help="Drop interactions with a smaller EVENT_VALUE.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    text_field: Annotated[
        list[str] | None,
        typer.Option(help="An items column of free text (TITLE): embedded as item metadata."),
    ] = None,
) -> None:
    """Fit a recipe on each user's earlier interactions and report ranking metrics."""
    params = key_values(param, "--param")
    if protocol not in PROTOCOLS:
        die(f"--protocol {protocol!r}: expected {' or '.join(PROTOCOLS)}")
    if tune < 0:
        die(f"--tune {tune}: expected 0 or more trials")
    with fail_cleanly():
        config = _data_config(key_values(event_weight, "--event-weight"), min_event_value)
        frame = read_table(interactions, dataset="interactions")
        item_frame = None if items is None else read_table(items, dataset="items")
        data, _, _ = build_training_data(
            frame, item_frame, config=config, item_textual=text_field or (),
            text_cache=state(ctx).settings().artifacts / TEXT_CACHE_FOLDER if text_field else None,
        )  # fmt: skip
        with progress_bar() as bar:
            task = bar.add_task(f"evaluate {recipe}", total=1.0, note="")

            def on_progress(fraction: float, message: str) -> None:
                bar.update(task, completed=fraction, note=message)

            result = run_evaluation(
                data, recipe, dict(params), protocol=cast(EvaluationProtocol, protocol),
                seed=seed, tune_trials=tune, progress=on_progress,
            )  # fmt: skip
    if as_json:
        print_json(result)
    else:
        console.print(_table(result))


def _data_config(weights: dict[str, str], min_event_value: float | None) -> SolutionDataConfig:
    parsed: dict[str, float] = {}
    for event_type, text in weights.items():
        try:
            parsed[event_type] = float(text)
        except ValueError:
            die(f"--event-weight {event_type}={text}: the weight must be a number")
    try:
        return SolutionDataConfig(event_weights=parsed or None, min_event_value=min_event_value)
    except ValidationError as error:
        die("--event-weight: " + "; ".join(str(e["msg"]) for e in error.errors()))


def _table(result: dict[str, Any]) -> Table:
    validation: dict[str, float] = result["validation"]
    table = Table(
        title=f"{result['recipe']} · {result['protocol']} · {result['users']:,} users "
        f"· final fit {result['train_seconds']:.1f}s"
    )
    table.add_column("metric")
    table.add_column("test", justify="right")
    table.add_column("validation", justify="right")
    for name, value in validation.items():
        table.add_row(name, f"{result[name]:.4f}", f"{value:.4f}")
    params = ", ".join(f"{key}={value}" for key, value in result["params"].items())
    table.caption = f"params: {params or '(defaults)'}"
    return table
