"""tastebud recipes list|show: every recipe and its hyperparameters, from the configs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.recipes import RECIPES


def test_list_names_every_recipe_with_what_it_answers() -> None:
    result = CliRunner().invoke(app, ["recipes", "list"])
    assert result.exit_code == 0
    for name in RECIPES:
        assert f"{name}  " in result.stdout
    assert "the next items for this user, now" in result.stdout


def test_show_gives_defaults_bounds_and_meanings() -> None:
    result = CliRunner().invoke(app, ["recipes", "show", "sequential", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["hyperparameters"]}
    assert rows["dropout"]["default"] is None and rows["dropout"]["bounds"] == ">= 0.0, < 1.0"
    assert "500,000 training events" in rows["dropout"]["description"]
    assert rows["max_len"]["type"] == "int | None" and "None" in rows["max_len"]["description"]
    assert rows["device"]["default"] == "auto"
    table = CliRunner().invoke(app, ["recipes", "show", "popularity-count"])
    assert table.exit_code == 0 and "half_life_days" in table.stdout


def test_show_an_unknown_recipe_names_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["recipes", "show", "sasrec"])
    assert result.exit_code == 1
    assert "unknown recipe 'sasrec'" in result.stderr and "sequential" in result.stderr
