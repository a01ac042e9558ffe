"""Embeddings: ``tastebud embeddings export`` writes a solution's item or user vectors, in
their stable space, to a Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastebud.cli._common import (
    console,
    die,
    engine,
    group_option,
    print_json,
    resolve_group,
)
from tastebud.embeddings.service import Kind

embeddings_app = typer.Typer(
    help="Embeddings: item and user vectors, stable across versions.", no_args_is_help=True
)


@embeddings_app.command("export")
def export(
    ctx: typer.Context,
    solution: Annotated[str, typer.Option(help="Solution whose newest active version answers.")],
    what: Annotated[str, typer.Option(help="items or users.")],
    output: Annotated[Path, typer.Option(help="The Parquet file to write.")],
    version: Annotated[str | None, typer.Option(help="Or this solution version.")] = None,
    group: str | None = group_option(),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Write every item (or user) with a vector: columns id, vector (fixed-size list of
    float32), version_id, space_id."""
    if what not in ("items", "users"):
        die(f"--what {what!r}: expected items or users")
    kind: Kind = "items" if what == "items" else "users"
    with engine(ctx) as eng:
        rows = eng.embeddings.export(resolve_group(ctx, group), solution, kind, output,
                                     version_id=version)  # fmt: skip
    if as_json:
        print_json({"rows": rows, "output": str(output)})
        return
    console.print(f"{rows} {what} vectors written to {output}", highlight=False)
