"""Slates for the user's next few actions (``horizon``) over HTTP, the SDK and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.client import Client
from tastebud.errors import InvalidInput
from tests.recipes.conftest import clustered
from tests.serving.conftest import write_clustered
from tests.test_client import Server, client, server  # noqa: F401 (fixtures)

NEXT_THREE = {"predict_next": 3, "epochs": 3, "hidden": 16, "max_len": 8, "batch_size": 16,
              "validation_users": 8}  # fmt: skip


def seen_by(user: int) -> set[str]:
    data = clustered()
    return {f"i{i}" for i in data.items[data.users == user]}


def check_slate(items: list[dict[str, Any]], user: int, k: int) -> None:
    """``k`` unseen items, best first, each scored by its probability of coming next."""
    scores = [item["score"] for item in items]
    assert len(items) == k and scores == sorted(scores, reverse=True)
    assert all(0 < score <= 1 for score in scores)
    assert not {item["itemId"] for item in items} & seen_by(user)


def test_slates_over_http_and_the_sdk(
    client: Client,  # noqa: F811 (fixture)
    server: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("next3", "sequential", params=NEXT_THREE)
    client.create_solution("popular", "popularity-count")
    for name in ("next3", "popular"):
        assert client.train(name, poll_interval=0.02)["status"] == "active"

    check_slate(client.recommend("u0", solution="next3", num_results=5, horizon=3)["itemList"],
                user=0, k=5)  # fmt: skip
    plain = client.recommend("u0", solution="next3", num_results=5)["itemList"]
    assert client.recommend("u0", solution="next3", num_results=5, horizon=1)["itemList"] == plain
    with pytest.raises(InvalidInput, match="predictNext=3"):
        client.recommend("u0", solution="next3", horizon=4)
    with pytest.raises(InvalidInput, match=r"'popularity-count'.*next action only"):
        client.recommend("u0", solution="popular", horizon=2)

    url = f"{server.url}/v1/dataset-groups/{client.group}/recommendations"
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    answer = httpx.post(url, json={"solution": "next3", "userId": "u1", "numResults": 4,
                                   "horizon": 2}, headers=headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    check_slate(answer.json()["itemList"], user=1, k=4)
    for bad in (0, 9, 10**12, "3", 2.5, None, [3]):
        failed = httpx.post(url, json={"solution": "next3", "userId": "u1", "horizon": bad},
                            headers=headers)  # fmt: skip
        assert failed.status_code == 422, (bad, failed.text)
        error = failed.json()["error"]
        assert error["type"] == "InvalidInput" and "horizon" in error["message"], error


def test_slates_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(tmp_path / "home"), *args])
        return result.exit_code, result.stdout, result.stderr

    interactions, _ = write_clustered(tmp_path)
    assert cli("import", str(interactions), "--dataset", "interactions")[0] == 0
    params = [arg for key, value in NEXT_THREE.items() for arg in ("-p", f"{key}={value}")]
    assert cli("solutions", "create", "next3", "--recipe", "sequential", *params)[0] == 0
    code, _, err = cli("train", "next3")
    assert code == 0, err
    code, out, err = cli("recommend", "--solution", "next3", "--user", "u2", "-n", "3",
                         "--horizon", "3", "--json")  # fmt: skip
    assert code == 0, err
    check_slate([{"itemId": r["id"], "score": r["score"]} for r in json.loads(out)["results"]],
                user=2, k=3)  # fmt: skip
    code, _, err = cli("recommend", "--solution", "next3", "--user", "u2", "--horizon", "4")
    assert code == 1 and "predictNext=3" in err and "Traceback" not in err
    for bad in ("0", "9", "three"):
        code, _, err = cli("recommend", "--solution", "next3", "--user", "u2", "--horizon", bad)
        assert code == 2 and "--horizon" in err, (bad, err)
