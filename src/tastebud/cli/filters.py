"""Filters: ``tastebud filters validate|create|list|show|delete``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tastebud.cli._common import console, engine, group_option, print_json, resolve_group
from tastebud.filters import parameters, parse, render
from tastebud.store import FilterRecord

filters_app = typer.Typer(
    help="Filters: business rules applied to recommendations, by name.", no_args_is_help=True
)

Expression = Annotated[str, typer.Argument(help='e.g. "EXCLUDE ItemID WHERE Items.PRICE > 100"')]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _json(record: FilterRecord) -> dict[str, object]:
    return {"name": record.name, "filterExpression": record.expression,
            "parameters": parameters(parse(record.expression)),
            "createdAt": record.created_at}  # fmt: skip


@filters_app.command("validate")
def validate(
    ctx: typer.Context, expression: Expression, group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:  # fmt: skip
    """Check an expression against the group's schemas: exit 0 when valid, 1 with the problem."""
    with engine(ctx) as eng:
        tree = eng.validate_filter(resolve_group(ctx, group), expression)
    used = parameters(tree)
    if as_json:
        print_json({"valid": True, "filterExpression": render(tree), "parameters": used})
        return
    console.print(f"[green]valid[/] {tree.expressions[0].target} filter: {render(tree)}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    if used:
        console.print("parameters: " + ", ".join(f"${p}" for p in used), highlight=False)


@filters_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The filter's name, e.g. not-watched.")],
    expression: Expression,
    replace: Annotated[bool, typer.Option(help="Overwrite a filter of that name.")] = False,
    group: str | None = group_option(),
) -> None:
    """Validate and save a filter; use it with --filter NAME on recommend, rank, …"""
    with engine(ctx) as eng:
        eng.create_filter(resolve_group(ctx, group), name, expression, replace=replace)
    console.print(f"filter [bold]{name}[/] saved", highlight=False)


@filters_app.command("list")
def list_(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """The group's filters."""
    with engine(ctx) as eng:
        group_name = resolve_group(ctx, group)
        found = eng.list_filters(group_name)
    if as_json:
        print_json([_json(f) for f in found])
        return
    table = Table(title=f"filters in {group_name}")
    for column in ("name", "expression", "parameters"):
        table.add_column(column)
    for record in found:
        used = parameters(parse(record.expression))
        table.add_row(record.name, record.expression, ", ".join(f"${p}" for p in used) or "-")
    console.print(table)


@filters_app.command("show")
def show(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """One filter as JSON."""
    with engine(ctx) as eng:
        record = eng.get_filter(resolve_group(ctx, group), name)
    print_json(_json(record))


@filters_app.command("delete")
def delete(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """Delete a filter."""
    with engine(ctx) as eng:
        eng.delete_filter(resolve_group(ctx, group), name)
    console.print(f"deleted filter {name}", highlight=False)
