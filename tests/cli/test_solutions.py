"""The solution, train and recommend commands, end to end on an embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tests.serving.conftest import write_clustered


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    home = tmp_path / "home"

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(home), *args])
        return result.exit_code, result.stdout, result.stderr

    interactions, _ = write_clustered(tmp_path)
    code, _, err = run("import", str(interactions), "--dataset", "interactions", "--json")
    assert code == 0, err
    return run


def test_create_train_recommend(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("solutions", "create", "popular", "--recipe", "popularity-count")
    assert code == 0, err
    code, out, err = cli("train", "popular", "--json")
    assert code == 0, err
    version = json.loads(out)
    assert version["status"] == "active" and version["metrics"]["users"] == 60
    code, out, err = cli("recommend", "--solution", "popular", "--user", "u0", "-n", "3", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["solutionVersionId"] == version["id"] and len(answer["results"]) == 3
    code, out, _ = cli("solutions", "versions", "popular", "--json")
    assert [v["id"] for v in json.loads(out)] == [version["id"]]


def test_user_mistakes_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("solutions", "create", "p", "--recipe", "popularity-count", "-p", "x")
    assert code == 1 and "--param 'x': expected KEY=VALUE" in err and "Traceback" not in err
    code, _, err = cli("solutions", "create", "p", "--recipe", "popularity-count", "-p", "k=1")
    assert code == 1 and "recipe 'popularity-count'" in err and "k" in err
    code, _, err = cli("train", "nope")
    assert code == 1 and "solution 'nope' does not exist" in err
    code, _, err = cli("recommend", "--user", "u0")
    assert code == 1 and "--solution" in err


def test_train_incremental_grows_the_active_version(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tiny = ["-p", "epochs=2", "-p", "hidden=16", "-p", "max_len=8", "-p", "validation_users=8"]
    assert cli("solutions", "create", "next", "--recipe", "sequential", *tiny)[0] == 0
    code, _, err = cli("train", "next", "--incremental")
    assert code == 1 and "no active version to grow from" in err and "Traceback" not in err
    code, out, err = cli("train", "next", "--incremental", "--full-fallback", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert "no active version" in first["incremental"]["fallback"] and first["metrics"]
    # a new item after the first version, taken up by a few users
    later = tmp_path / "later.csv"
    rows = [f"u{u},i40,{2_000_000 + u},click" for u in range(5)]
    later.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n" + "\n".join(rows) + "\n")
    assert cli("import", str(later), "--dataset", "interactions", "--json")[0] == 0
    code, out, err = cli("train", "next", "--incremental", "--json")
    assert code == 0, err
    grown = json.loads(out)
    assert grown["status"] == "active" and grown["metrics"] == {}
    assert grown["incremental"]["parent"] == first["id"]
    assert grown["incremental"]["users"] == 5 and grown["incremental"]["new_items"] == 1
    code, out, err = cli("recommend", "--solution", "next", "--user", "u7", "-n", "41", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["solutionVersionId"] == grown["id"]
    assert "i40" in [r["id"] for r in answer["results"]]  # the grown table has its row
    assert cli("solutions", "create", "pop", "--recipe", "popularity-count")[0] == 0
    assert cli("train", "pop")[0] == 0
    code, _, err = cli("train", "pop", "--incremental")
    assert code == 1 and "cannot train incrementally" in err
