"""The ``tastebud`` command line (Typer + Rich); one module per command group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastebud.cli import (
    admin,
    batch,
    campaigns,
    data,
    demo,
    embeddings,
    evaluate,
    experiments,
    features,
    filters,
    maintenance,
    messages,
    recipes,
    recommend,
    reels,
    schedules,
    segments,
    serve,
    solutions,
)
from tastebud.cli._common import CliState
from tastebud.cli.stream import consume_app

app = typer.Typer(
    name="tastebud",
    help="tastebud: a self-hosted personalization engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _settings(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Data folder (env TASTEBUD_HOME, default ./.tastebud).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="postgresql://… to use PostgreSQL (env TASTEBUD_DATABASE_URL)."),
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Default dataset group (env TASTEBUD_DEFAULT_GROUP).")
    ] = None,
) -> None:
    overrides = {"home": home, "database_url": database_url, "default_group": group}
    ctx.obj = CliState({k: v for k, v in overrides.items() if v is not None})


app.command()(data.init)
app.command("import")(data.import_)
app.command()(data.status)
app.command()(data.export)
app.command()(maintenance.backup)
app.command()(maintenance.restore)
app.command()(maintenance.doctor)
app.command()(serve.serve)
app.command()(schedules.worker)
app.command()(demo.demo)
app.command()(evaluate.evaluate)
app.command()(solutions.train)
app.command()(recommend.recommend)
app.command()(recommend.rank)
app.command("similar-items")(recommend.similar_items)
app.command("similar-users")(recommend.similar_users)
app.command()(recommend.segment)
app.add_typer(recipes.recipes_app, name="recipes")
app.add_typer(solutions.solutions_app, name="solutions")
app.add_typer(filters.filters_app, name="filters")
app.add_typer(campaigns.campaigns_app, name="campaigns")
app.add_typer(schedules.schedules_app, name="schedules")
app.add_typer(data.schema_app, name="schema")
app.add_typer(data.users_app, name="users")
app.add_typer(admin.groups_app, name="groups")
app.add_typer(admin.tokens_app, name="tokens")
app.add_typer(admin.jobs_app, name="jobs")
app.add_typer(consume_app, name="consume")
app.add_typer(batch.batch_app, name="batch")
app.add_typer(features.features_app, name="features")
app.add_typer(messages.messages_app, name="messages")
app.add_typer(reels.reels_app, name="reels")
app.add_typer(experiments.experiments_app, name="experiments")
app.add_typer(experiments.metrics_app, name="metrics")
app.add_typer(embeddings.embeddings_app, name="embeddings")
app.add_typer(segments.segments_app, name="segments")


def main() -> None:
    app()
