"""``tastebud evaluate`` through Typer's runner on small generated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tests.recipes.conftest import clustered

LEAVE_LAST_OUT_KEYS = {"ndcg@10", "hr@10", "ndcg@20", "hr@20", "mrr@25", "coverage@10"}


def interactions_frame(*, per_user: int = 6) -> pl.DataFrame:
    data = clustered(n_users=20, n_items=16, per_user=per_user)
    return pl.DataFrame(
        {
            "USER_ID": [f"user{u}" for u in data.users],
            "ITEM_ID": [f"item{i}" for i in data.items],
            "TIMESTAMP": data.timestamps,
            "EVENT_TYPE": np.where(data.items % 2 == 0, "click", "buy"),
        }
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["evaluate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_output_is_one_object_with_every_key(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    interactions_frame().write_csv(path)
    code, out, _ = run(runner, "--interactions", str(path), "--recipe", "popularity-count",
                       "--json")  # fmt: skip
    assert code == 0
    result = json.loads(out)  # nothing but the object on stdout
    assert set(result) >= LEAVE_LAST_OUT_KEYS
    assert set(result["validation"]) == LEAVE_LAST_OUT_KEYS
    assert result["users"] == 20 and result["recipe"] == "popularity-count"
    assert result["params"] == {"half_life_days": None}
    assert result["train_seconds"] >= 0


def test_parquet_time_holdout_with_params_and_event_weights(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "interactions.parquet"
    interactions_frame().write_parquet(path)
    code, out, err = run(
        runner, "--interactions", str(path), "--recipe", "popularity-count",
        "--protocol", "time-holdout", "--param", "half_life_days=7", "--event-weight",
        "click=2", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert "normalized_discounted_cumulative_gain_at_25" in result and "coverage" in result
    assert result["params"] == {"half_life_days": 7.0}
    assert result["protocol"] == "time-holdout"


def test_table_output(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv.gz"
    interactions_frame().write_csv(tmp_path / "plain.csv")
    import gzip

    path.write_bytes(gzip.compress((tmp_path / "plain.csv").read_bytes()))
    code, out, _ = run(runner, "--interactions", str(path), "--recipe", "popularity-count")
    assert code == 0
    assert "ndcg@10" in out and "validation" in out and "popularity-count" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "popularity-count", "--param", "half_life_days"], "expected KEY=VALUE"),
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--recipe", "popularity-count", "--param", "half_life_days=-3"], "half_life_days"),
        (["--recipe", "popularity-count", "--param", "colour=red"], "colour"),
        (["--recipe", "popularity-count", "--protocol", "k-fold"], "--protocol"),
        (["--recipe", "popularity-count", "--event-weight", "click=lots"], "must be a number"),
        (["--recipe", "popularity-count", "--event-weight", "click=0"], "must be > 0"),
        (["--recipe", "popularity-count", "--event-weight", "view=1"], "no interactions left"),
    ],
)
def test_mistakes_print_one_line(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    path = tmp_path / "interactions.csv"
    interactions_frame().write_csv(path)
    code, out, err = run(runner, "--interactions", str(path), *args)
    assert code != 0
    assert message in err
    assert "Traceback" not in err and out == ""


def test_too_few_interactions_per_user(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    interactions_frame(per_user=2).write_csv(path)
    code, _, err = run(runner, "--interactions", str(path), "--recipe", "popularity-count")
    assert code == 1
    assert "at least 3 interactions" in err


def test_missing_file_and_missing_columns(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = run(runner, "--interactions", str(tmp_path / "gone.csv"), "--recipe", "x")
    assert code == 1 and "gone.csv: no such file" in err
    path = tmp_path / "bad.csv"
    pl.DataFrame({"USER_ID": ["a"], "ITEM_ID": ["b"]}).write_csv(path)
    code, _, err = run(runner, "--interactions", str(path), "--recipe", "popularity-count")
    assert code == 1 and "missing required column(s) TIMESTAMP" in err


def test_text_fields_are_named_and_checked(runner: CliRunner, tmp_path: Path) -> None:
    path, items = tmp_path / "interactions.csv", tmp_path / "items.csv"
    interactions_frame().write_csv(path)
    pl.DataFrame({"ITEM_ID": ["item0"], "TITLE": ["Toy Story"], "YEAR": [1995]}).write_csv(items)
    base = ["--interactions", str(path), "--recipe", "popularity-count"]
    code, _, err = run(runner, *base, "--text-field", "TITLE")
    assert code != 0 and "need an items file" in err
    code, _, err = run(runner, *base, "--items", str(items), "--text-field", "PLOT")
    assert code != 0 and "no textual field 'PLOT'" in err
    code, _, err = run(runner, *base, "--items", str(items), "--text-field", "YEAR")
    assert code != 0 and "items.YEAR: a textual field holds text" in err
