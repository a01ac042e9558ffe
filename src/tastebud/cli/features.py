"""Features: ``tastebud features apply|show|list|read|frame|compute``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastebud.cli._common import (
    console,
    engine,
    existing_file,
    group_option,
    key_values,
    print_json,
    resolve_group,
)
from tastebud.features.frames import read_labels, write_frame

features_app = typer.Typer(
    help="Features: stream counters, sessions, rates, batch and request-time features.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@features_app.command("apply")
def apply(
    ctx: typer.Context, file: Path, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Declare the group's features from a YAML (or JSON) file: stored as a new version."""
    text = existing_file(file).read_text(encoding="utf-8")
    with engine(ctx) as eng:
        name = resolve_group(ctx, group)
        eng.features.apply(name, text)
        described = eng.features.describe(name)
    if as_json:
        print_json(described)
        return
    console.print(f"[green]features version {described['version']}[/] of group {name!r}: "
                  f"{len(described['columns'])} columns")  # fmt: skip


@features_app.command("show")
def show(ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False) -> None:
    """The current declaration (YAML-ready JSON), its version and batch computations."""
    with engine(ctx) as eng:
        described = eng.features.describe(resolve_group(ctx, group))
    if as_json:
        print_json(described)
        return
    applied = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(described["created_at"]))
    console.print(f"version {described['version']} (applied {applied} UTC)")
    print_json({"features": described["features"]})
    for name, run in described["computations"].items():
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run["computed_at"]))
        console.print(f"{name}: computed {at} UTC, {run['entities']} entities")


@features_app.command("list")
def list_features(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Declared features: name, kind, entity, window."""
    with engine(ctx) as eng:
        described = eng.features.describe(resolve_group(ctx, group))
    rows = [{"name": f["name"], "kind": f["kind"], "entity": f.get("entity", "item"),
             "aggregation": f.get("aggregation") or f.get("source") or "",
             "window": f.get("window") or (f.get("days") and f["days"] * 86_400)}
            for f in described["features"]]  # fmt: skip
    if as_json:
        print_json({"version": described["version"], "features": rows})
        return
    table = Table("name", "kind", "entity", "aggregation", "window (s)")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in ("name", "kind", "entity", "aggregation",
                                                       "window")))  # fmt: skip
    console.print(table)


@features_app.command("read")
def read(
    ctx: typer.Context,
    items: Annotated[list[str], typer.Argument(help="Item ids.")],
    user: Annotated[str | None, typer.Option(help="The user (user features).")] = None,
    features: Annotated[str | None, typer.Option(help="a,b,c (default: all).")] = None,
    context: Annotated[list[str] | None, typer.Option(help="KEY=VALUE context field.")] = None,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Online values of a user and items, now."""
    with engine(ctx) as eng:
        name = resolve_group(ctx, group)
        names = features.split(",") if features else eng.features.names(name)
        values = eng.features.online(name, names, user_id=user, item_ids=items,
                                     context=key_values(context, "--context"))  # fmt: skip
    rows = [[None if math.isnan(v) else v for v in row] for row in values.tolist()]
    if as_json:
        print_json({"names": names, "itemIds": items, "values": rows})
        return
    table = Table("item", *names)
    for item, row in zip(items, rows, strict=True):
        table.add_row(item, *("" if v is None else f"{v:.4g}" for v in row))
    console.print(table)


@features_app.command("frame")
def frame(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option(help="The frame: .parquet or .csv.")],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="USER_ID, ITEM_ID, TIMESTAMP, LABEL… (.csv/.parquet); default: the "
            "store's interactions (1) and impressions not chosen (0)."
        ),
    ] = None,
    features: Annotated[str | None, typer.Option(help="a,b,c (default: all).")] = None,
    group: str | None = group_option(),
) -> None:
    """A point-in-time training frame: each label row with feature values as of its time."""
    started = time.monotonic()
    with engine(ctx) as eng:
        name = resolve_group(ctx, group)
        rows = read_labels(labels) if labels is not None else eng.features.labels(name)
        result = eng.features.frame(name, rows, features.split(",") if features else None)
    write_frame(result, output)
    console.print(f"[green]{output}[/]: {result.height} rows, {result.width} columns in "
                  f"{time.monotonic() - started:.1f}s")  # fmt: skip


@features_app.command("compute")
def compute(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Recompute the batch features now (a serving process also does it when due)."""
    with engine(ctx) as eng:
        summary = eng.features.compute(resolve_group(ctx, group))
    if as_json:
        print_json(summary)
        return
    for feature, entities in summary["features"].items():
        console.print(f"{feature}: {entities} entities")
