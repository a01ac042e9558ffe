"""``POST …/batch-jobs``: a job over files on the server, followed through ``/v1/jobs/{id}``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastebud.engine import Engine
from tests.api.conftest import Api
from tests.serving.conftest import loaded

__all__ = ["loaded"]


@pytest.fixture
def trained(loaded: Engine, group: str) -> Engine:
    loaded.create_solution(group, "for-you", {"recipe": "user-personalization",
                                              "params": {"algorithm": "ease"}})  # fmt: skip
    loaded.train(group, "for-you")
    return loaded


def test_batch_job_over_http(api: Api, trained: Engine, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"userId": "u1"}\n{"userId": "u2"}\n{"user": "u3"}\n')
    output = tmp_path / "out.jsonl"
    body = {"solution": "for-you", "inputPath": str(source), "outputPath": str(output),
            "numResults": 4, "maxErrorRate": 0.5}  # fmt: skip
    response = api.http.post(api.url("/batch-jobs"), json=body, headers=api.admin)
    assert response.status_code == 202, response.text
    job = api.wait_for_job(response.json()["id"])
    assert job["status"] == "succeeded" and job["kind"] == "batch-recommend"
    assert job["result"]["lines"] == 3 and job["result"]["errors"] == 1
    answers = [json.loads(line) for line in output.read_text().splitlines()]
    expected = trained.recommender.recommend(api.group, {"solution": "for-you"}, user_id="u1", k=4)
    assert answers[0]["output"]["recommendedItems"] == [r.id for r in expected.results]
    assert "unknown field 'user'" in answers[2]["error"]


def test_batch_job_errors_and_scopes(api: Api, trained: Engine, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"bad": 1}\n')
    body = {"solution": "for-you", "inputPath": str(source), "outputPath": str(tmp_path / "o")}
    assert api.http.post(api.url("/batch-jobs"), json=body, headers=api.ingest).status_code == 403
    failed = api.http.post(api.url("/batch-jobs"), json=body, headers=api.admin)
    job = api.wait_for_job(failed.json()["id"])
    assert job["status"] == "failed" and "over the error budget" in job["error"]
    missing = body | {"inputPath": str(tmp_path / "none.jsonl")}
    response = api.http.post(api.url("/batch-jobs"), json=missing, headers=api.admin)
    assert response.status_code == 422 and "no such file" in response.text
    unknown = body | {"numResults": 5, "extra": True}
    assert api.http.post(api.url("/batch-jobs"), json=unknown, headers=api.admin).status_code == 422
