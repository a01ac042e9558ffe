"""Data commands: init, import, status, schema, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from tastebud.cli._common import (
    console,
    die,
    engine,
    existing_file,
    fail_cleanly,
    group_option,
    print_json,
    progress_bar,
    resolve_group,
)
from tastebud.jobs import ImportRejected
from tastebud.schema import DATASETS

Dataset = Annotated[str, typer.Option("--dataset", "-d", help="interactions, items or users.")]


def init(ctx: typer.Context) -> None:
    """Create the store (SQLite under TASTEBUD_HOME by default) and a first admin token."""
    with engine(ctx) as eng:
        token = eng.init()
        console.print(f"store ready: [bold]{eng.store.url}[/]")
        if token:
            console.print(f"admin token (saved to {eng.settings.home / 'admin.token'}): {token}")
        else:
            console.print("tokens already exist; `tastebud tokens create NAME` makes another")


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv, .csv.gz or .parquet file.")],
    dataset: Dataset,
    mode: Annotated[str, typer.Option(help="full (replace) or incremental (upsert).")] = (
        "incremental"
    ),
    max_error_rate: Annotated[
        float | None, typer.Option(help="Share of rows that may be rejected (default 0.1).")
    ] = None,
    encoding: Annotated[str, typer.Option(help="The file's text encoding.")] = "utf-8",
    group: str | None = group_option(),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Import a file into a dataset; rejected rows go to a rejects file with line and reason."""
    existing_file(file)
    with engine(ctx) as eng, progress_bar(enabled=not as_json) as bar:
        task = bar.add_task(f"import {file.name}", total=1.0, note="")

        def on_progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, note=message)

        try:
            result = eng.import_file(
                resolve_group(ctx, group), dataset, file, mode=mode,  # type: ignore[arg-type]
                max_error_rate=max_error_rate, encoding=encoding, on_progress=on_progress,
            )  # fmt: skip
        except ImportRejected as exc:
            if as_json:
                print_json({**exc.result.to_dict(), "stored": 0, "error": exc.message})
            die(exc.message)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"[green]imported[/] {result.accepted:,} rows into {dataset} "
        f"({result.rejected:,} rejected) in {result.seconds:.1f}s"
    )
    if result.rejects_file:
        console.print(f"rejected rows: {result.rejects_file}")
    if result.schema_inferred:
        console.print(f"schema inferred for {dataset}; see `tastebud schema show {dataset}`")


def status(
    ctx: typer.Context,
    group: str | None = group_option(),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Row counts per dataset."""
    with engine(ctx) as eng:
        name = resolve_group(ctx, group)
        counts = eng.counts(name)
        if as_json:
            print_json(counts)
            return
        table = Table(title=f"dataset group {name} ({eng.store.url})")
        table.add_column("what")
        table.add_column("rows", justify="right")
        for key, value in counts.items():
            table.add_row(key, f"{value:,}")
        console.print(table)


schema_app = typer.Typer(help="Declare and show dataset schemas.", no_args_is_help=True)


@schema_app.command("set")
def schema_set(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="interactions, items or users.")],
    field: Annotated[
        list[str] | None, typer.Option("--field", "-f", help="NAME=TYPE (repeatable).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A JSON/YAML file: {fields: {NAME: TYPE}}.")
    ] = None,
    group: str | None = group_option(),
) -> None:
    """Declare a dataset's fields: categorical, numerical, textual, timestamp or string."""
    fields: dict[str, str] = {}
    if file is not None:
        body = yaml.safe_load(existing_file(file).read_text(encoding="utf-8")) or {}
        fields.update(body.get("fields", body) if isinstance(body, dict) else {})
    for item in field or []:
        name, sep, type_ = item.partition("=")
        if not sep:
            die(f"--field {item!r}: expected NAME=TYPE")
        fields[name.strip()] = type_.strip()
    with engine(ctx) as eng:
        schema = eng.put_schema(resolve_group(ctx, group), dataset, fields)  # type: ignore[arg-type]
        print_json(schema.to_json_dict())


@schema_app.command("show")
def schema_show(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="interactions, items or users.")],
    group: str | None = group_option(),
) -> None:
    """Print a dataset's schema as JSON."""
    with engine(ctx) as eng:
        print_json(eng.get_schema(resolve_group(ctx, group), dataset).to_json_dict())  # type: ignore[arg-type]


def export(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help=", ".join(DATASETS))],
    file: Annotated[Path, typer.Argument(help="Destination .csv or .parquet.")],
    group: str | None = group_option(),
) -> None:
    """Export a dataset with external ids and its schema's columns."""
    with engine(ctx) as eng:
        rows = eng.export(resolve_group(ctx, group), dataset, file)  # type: ignore[arg-type]
    console.print(f"exported {rows:,} {dataset} rows to {file}")


def _read_ids(ids: list[str] | None, file: Path | None) -> list[str]:
    found = list(ids or [])
    if file is not None:
        text = existing_file(file).read_text(encoding="utf-8")
        found += json.loads(text) if text.lstrip().startswith("[") else text.split()
    return [i.strip() for i in found if i.strip()]


users_app = typer.Typer(help="Users: erase their data.", no_args_is_help=True)


@users_app.command("delete")
def users_delete(
    ctx: typer.Context,
    user_ids: Annotated[list[str] | None, typer.Argument(help="User ids to erase.")] = None,
    file: Annotated[Path | None, typer.Option(help="A file of ids (lines or JSON list).")] = None,
    group: str | None = group_option(),
) -> None:
    """Erase users: profile, interactions, sessions and id (privacy requests)."""
    ids = _read_ids(user_ids, file)
    if not ids:
        die("give user ids as arguments or with --file")
    with engine(ctx) as eng, fail_cleanly():
        found = eng.delete_users(resolve_group(ctx, group), ids)
    console.print(f"erased {found} of {len(ids)} users ({len(ids) - found} were unknown)")
