"""The recipes and their hyperparameters: ``tastebud recipes list|show``."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from annotated_types import Ge, Gt, Le, Lt
from rich.table import Table

from tastebud.cli._common import console, die, print_json
from tastebud.errors import InvalidInput
from tastebud.recipes import RECIPES, get_recipe

recipes_app = typer.Typer(help="Recipes and their hyperparameters.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
_BOUNDS = ((Ge, "ge", ">="), (Gt, "gt", ">"), (Le, "le", "<="), (Lt, "lt", "<"))


@recipes_app.command("list")
def list_() -> None:
    """The recipes a solution can use."""
    for name, target in RECIPES.items():
        console.print(f"[bold]{name}[/]  {_summary(name, target)}", highlight=False)


@recipes_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A recipe, e.g. sequential.")],
    as_json: JsonFlag = False,
) -> None:
    """A recipe's hyperparameters: type, default, bounds and meaning (set with -p KEY=VALUE)."""
    try:
        recipe = get_recipe(name)
    except InvalidInput as error:
        die(str(error))
    rows = hyperparameters(recipe.config_type)
    if as_json:
        print_json({"recipe": name, "hyperparameters": rows})
        return
    table = Table("name", "type", "default", "bounds", "meaning", title=f"recipe {name}")
    for row in rows:
        table.add_row(row["name"], row["type"], repr(row["default"]), row["bounds"],
                      row["description"])  # fmt: skip
    console.print(table)


def _summary(name: str, target: str) -> str:
    """The first paragraph of the recipe module's docstring, without its name."""
    module = importlib.import_module(f"tastebud.recipes.{target.split(':')[0]}")
    paragraph = (module.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()).removeprefix(f"``{name}``: ")


def hyperparameters(config_type: type[Any]) -> list[dict[str, Any]]:
    """Each field of a recipe's pydantic config: name, type, default, bounds, description."""
    rows = []
    for name, info in config_type.model_fields.items():
        bounds = [f"{symbol} {getattr(rule, attribute)}" for rule in info.metadata
                  for kind, attribute, symbol in _BOUNDS if isinstance(rule, kind)]  # fmt: skip
        kind = info.annotation
        rows.append({
            "name": name,
            "type": kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", ""),
            "default": info.default,
            "bounds": ", ".join(bounds),
            "description": info.description or "",
        })  # fmt: skip
    return rows
