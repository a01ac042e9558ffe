"""``tastebud filters …`` and ``--filter``/``--filter-value`` on the recommendation commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tests.serving.conftest import write_clustered

Cli = Callable[..., tuple[int, str, str]]
GENRE_B = {f"i{i}" for i in range(20, 40)}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = CliRunner()
    home = tmp_path / "home"

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(home), *args])
        return result.exit_code, result.stdout, result.stderr

    interactions, items = write_clustered(tmp_path)
    for command in (
        ("schema", "set", "items", "-f", "GENRES=categorical"),
        ("import", str(interactions), "--dataset", "interactions", "--json"),
        ("import", str(items), "--dataset", "items", "--json"),
    ):
        code, _, err = run(*command)
        assert code == 0, err
    return run


def test_validate_exit_codes_and_messages(cli: Cli) -> None:
    code, out, err = cli("filters", "validate", "exclude itemid where Items.GENRES in ($G)")
    assert code == 0, err
    assert "valid ItemID filter: EXCLUDE ItemID WHERE Items.GENRES IN ($G)" in out
    assert "parameters: $G" in out
    code, out, _ = cli(
        "filters", "validate", "--json", 'INCLUDE ItemID WHERE Items.GENRES IN ("a")'
    )
    canonical = 'INCLUDE ItemID WHERE Items.GENRES IN ("a")'
    assert json.loads(out) == {"valid": True, "parameters": [], "filterExpression": canonical}
    code, _, err = cli("filters", "validate", 'INCLUDE ItemID WHERE Items.GENRES IN ("a)')
    assert code == 1 and "Traceback" not in err
    assert "column 39: unbalanced quotes" in err
    code, _, err = cli("filters", "validate", "INCLUDE ItemID WHERE Items.PRICE < 3")
    assert code == 1 and "Items.PRICE: unknown field; items fields are ITEM_ID" in err


def test_create_list_use_and_delete(cli: Cli) -> None:
    code, _, err = cli("filters", "create", "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert code == 0, err
    code, _, err = cli("filters", "create", "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert code == 1 and "filter 'genre' already exists" in err
    code, out, _ = cli("filters", "list", "--json")
    assert [(f["name"], f["parameters"]) for f in json.loads(out)] == [("genre", ["G"])]
    code, out, _ = cli("filters", "show", "genre")
    assert json.loads(out)["filterExpression"] == "INCLUDE ItemID WHERE Items.GENRES IN ($G)"

    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    assert cli("train", "popular", "--json")[0] == 0
    code, out, err = cli("recommend", "--solution", "popular", "--user", "u0", "-n", "6",
                         "--filter", "genre", "--filter-value", "G=b", "--json")  # fmt: skip
    assert code == 0, err
    items = [r["id"] for r in json.loads(out)["results"]]
    assert len(items) == 6 and set(items) <= GENRE_B
    code, out, err = cli("rank", "--solution", "popular", "--user", "u0", "--items", "i1,i22,i3",
                         "--filter", "genre", "--filter-value", "G=a,c", "--json")  # fmt: skip
    assert code == 0, err
    assert sorted(r["id"] for r in json.loads(out)["results"]) == ["i1", "i3"]
    code, _, err = cli("recommend", "--solution", "popular", "--user", "u0", "--filter", "genre")
    assert code == 1 and "no value for $G" in err
    code, _, err = cli("recommend", "--solution", "popular", "--filter", "genre",
                       "--filter-value", "G")  # fmt: skip
    assert code == 1 and "--filter-value 'G': expected KEY=VALUE" in err

    assert cli("filters", "delete", "genre")[0] == 0
    code, _, err = cli("filters", "delete", "genre")
    assert code == 1 and "filter 'genre' does not exist" in err
