"""``tastebud recommend --include-intent`` and ``tastebud segments intents`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tastebud.cli import app
from tests.serving.conftest import write_clustered


def test_intent_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(tmp_path / "home"), *args])
        return result.exit_code, result.stdout, result.stderr

    interactions, items = write_clustered(tmp_path)
    for command in (
        ("schema", "set", "items", "-f", "GENRES=categorical"),
        ("import", str(interactions), "--dataset", "interactions"),
        ("import", str(items), "--dataset", "items"),
        ("solutions", "create", "next", "--recipe", "sequential", "-p", "intent_heads=true",
         "-p", "epochs=8", "-p", "hidden=16", "-p", "max_len=8", "-p", "lr=0.01",
         "-p", "validation_users=0"),
        ("train", "next"),
        ("solutions", "create", "popular", "--recipe", "popularity-count"),
        ("train", "popular"),
    ):  # fmt: skip
        code, _, err = run(*command)
        assert code == 0, (command, err)

    code, out, err = run("recommend", "--solution", "next", "--user", "u45", "-n", "2",
                         "--include-intent", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["intent"]["GENRES"]["b"] > 0.5
    code, out, err = run("recommend", "--solution", "next", "--user", "u45", "--include-intent")
    assert code == 0 and "intent GENRES: b" in out, err
    code, _, err = run("recommend", "--solution", "popular", "--user", "u1", "--include-intent")
    assert code == 1 and "has no intent heads" in err and "Traceback" not in err

    folder = tmp_path / "segments"
    code, out, err = run("segments", "intents", "--solution", "next", "--clusters", "2",
                         "--json", "--output-dir", str(folder))  # fmt: skip
    assert code == 0, err
    found = json.loads(out)
    assert sorted(c["size"] for c in found["clusters"]) == [30, 30]
    assert found["users"]["u0"] != found["users"]["u59"]
    batch_input = folder / f"cluster-{found['users']['u0']}.jsonl"
    code, out, err = run("batch", "recommend", "--input", str(batch_input), "--solution", "next",
                         "--output", str(tmp_path / "out.jsonl"), "--json")  # fmt: skip
    assert code == 0, err
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 30 and all(json.loads(line)["error"] is None for line in lines)
    code, out, err = run("segments", "intents", "--solution", "next", "--clusters", "2")
    assert code == 0 and "GENRES: a" in out and "60 users clustered" in out, err
    code, _, err = run("segments", "intents", "--solution", "popular")
    assert code == 1 and "has no intent heads" in err
