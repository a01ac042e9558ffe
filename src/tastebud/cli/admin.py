"""Administration commands: dataset groups, tokens, jobs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from tastebud.cli._common import console, engine, group_option, print_json, resolve_group

groups_app = typer.Typer(help="Dataset groups (one per product or app).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens: admin, recommend or ingest-only.", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs (imports).", no_args_is_help=True)


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


@groups_app.command("create")
def groups_create(ctx: typer.Context, name: str) -> None:
    with engine(ctx) as eng:
        eng.create_group(name)
    console.print(f"created dataset group {name}")


@groups_app.command("list")
def groups_list(ctx: typer.Context) -> None:
    with engine(ctx) as eng:
        for group in eng.list_groups():
            console.print(f"{group.name}\tcreated {_when(group.created_at)}")


@groups_app.command("delete")
def groups_delete(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: deletes all its data.")] = False,
) -> None:
    if not yes:
        typer.confirm(f"delete dataset group {name} and all its data?", abort=True)
    with engine(ctx) as eng:
        eng.delete_group(name)
    console.print(f"deleted dataset group {name}")


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: str,
    scope: Annotated[
        str,
        typer.Option(
            help="admin; recommend (read recommendations, write events: a web back end); "
            "or ingest (may only write events)."
        ),
    ] = ("ingest"),
) -> None:
    """Create a token; it is shown once."""
    with engine(ctx) as eng:
        token = eng.create_token(name, scope=scope)  # type: ignore[arg-type]
    console.print(token)


@tokens_app.command("list")
def tokens_list(ctx: typer.Context) -> None:
    with engine(ctx) as eng:
        for token in eng.list_tokens():
            console.print(f"{token.name}\t{token.scope}\tcreated {_when(token.created_at)}")


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, name: str) -> None:
    with engine(ctx) as eng:
        eng.revoke_token(name)
    console.print(f"revoked token {name}")


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    group: str | None = group_option(),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    with engine(ctx) as eng:
        jobs = eng.list_jobs(resolve_group(ctx, group))
    if as_json:
        print_json([_job_dict(job) for job in jobs])
        return
    table = Table("id", "kind", "status", "progress", "created", "error")
    for job in jobs:
        table.add_row(job.id, job.kind, job.status, f"{job.progress:.0%}",
                      _when(job.created_at), job.error or "")  # fmt: skip
    console.print(table)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str) -> None:
    with engine(ctx) as eng:
        print_json(_job_dict(eng.job(job_id)))


def _job_dict(job: object) -> dict[str, object]:
    return {name: getattr(job, name) for name in job.__slots__}  # type: ignore[attr-defined]
