"""Segments of users from a trained model: ``tastebud segments intents``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastebud.cli._common import console, engine, group_option, print_json, resolve_group
from tastebud.segments import intent_segments

segments_app = typer.Typer(help="Segments of users computed from a trained model.",
                           no_args_is_help=True)  # fmt: skip


@segments_app.command("intents")
def intents(
    ctx: typer.Context,
    solution: Annotated[str, typer.Option(help="A sequential solution trained with intent heads.")],
    clusters: Annotated[int, typer.Option(help="How many clusters (2-256).")] = 8,
    seed: Annotated[int, typer.Option(help="K-means seed.")] = 0,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help='Write cluster-N.jsonl ({"userId"} lines: a segment for batch '
            "jobs and messages) and clusters.json here."
        ),
    ] = None,
    group: str | None = group_option(),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Cluster users by their predicted intent (K-means++ over intent embeddings): each
    cluster's size and its top genres and event types, and each user's cluster."""
    name = resolve_group(ctx, group)
    with engine(ctx) as eng:
        version = eng.recommender.resolve_version(name, solution=solution)
        found = intent_segments(eng.recommender, name, version, clusters=clusters, seed=seed)
    written = found.write(output_dir) if output_dir is not None else []
    if as_json:
        print_json(found.as_dict() | ({"files": [str(p) for p in written]} if written else {}))
        return
    table = Table(title=f"intent clusters of {solution} (version {found.version_id})")
    for column in ("cluster", "users", "intent"):
        table.add_column(column)
    for cluster in found.clusters:
        described = "; ".join(
            f"{head}: " + ", ".join(f"{value} {p:.0%}" for value, p in values.items())
            for head, values in cluster.intent.items()
        )
        table.add_row(str(cluster.cluster), str(cluster.size), described)
    console.print(table)
    console.print(f"{len(found.users)} users clustered, {found.without_history} without events")
    for path in written:
        console.print(f"wrote {path}")
