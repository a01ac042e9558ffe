"""Import jobs: uploaded files and server files, rejected rows, the error budget."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from ..conftest import Api

CSV = (
    "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
    "u1,i1,1700000000,click\n"
    "u1,i2,1700000100,click\n"
    "u2,i1,not-a-time,click\n"
    "u2,i3,1700000300,watch\n"
    "u3,i2,1700000400,click\n"
)


def upload(api: Api, body: bytes, query: str) -> dict[str, object]:
    response = api.http.post(
        api.url(f"/import-jobs/upload?{query}"), content=body, headers=api.admin
    )
    assert response.status_code == 202, response.text
    job: dict[str, object] = response.json()
    assert job["status"] in ("queued", "running") and job["kind"] == "import"
    return job


def test_upload_with_a_rejected_row_counts_it_and_writes_the_rejects_file(api: Api) -> None:
    job = upload(api, CSV.encode(), "dataset=interactions&filename=events.csv&maxErrorRate=0.5")
    done = api.wait_for_job(str(job["id"]))
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["error"] is None
    result = done["result"]
    assert result["accepted"] == 4 and result["rejected"] == 1 and result["stored"] == 4
    assert done["params"]["maxErrorRate"] == 0.5 and done["params"]["mode"] == "incremental"
    with open(result["rejectsFile"], newline="") as f:
        rejects = list(csv.DictReader(f))
    assert len(rejects) == 1
    assert rejects[0]["line"] == "4"
    assert "TIMESTAMP" in rejects[0]["reason"] and "not-a-time" in rejects[0]["reason"]
    assert api.counts()["interactions"] == 4
    assert [e["itemId"] for e in api.events("u1")] == ["i1", "i2"]

    listed = api.http.get(api.url("/import-jobs"), headers=api.admin).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert listed[0]["status"] == "succeeded"


def test_import_over_the_error_budget_fails_and_stores_nothing(api: Api) -> None:
    job = upload(api, CSV.encode(), "dataset=interactions&filename=events.csv&maxErrorRate=0.1")
    done = api.wait_for_job(str(job["id"]))
    assert done["status"] == "failed"
    assert "over the error budget" in done["error"] and "nothing was stored" in done["error"]
    assert done["result"]["rejected"] == 1 and done["result"]["accepted"] == 4
    assert api.counts()["interactions"] == 0


def test_full_import_of_a_server_file_replaces_the_dataset(api: Api, tmp_path: Path) -> None:
    first = tmp_path / "items.parquet"
    pl.DataFrame({"ITEM_ID": ["a", "b", "c"], "GENRES": ["x|y", "y", "z"]}).write_parquet(first)
    body = {"dataset": "items", "path": str(first), "mode": "full"}
    response = api.http.post(api.url("/import-jobs"), json=body, headers=api.admin)
    assert response.status_code == 202, response.text
    assert api.wait_for_job(response.json()["id"])["status"] == "succeeded"
    assert api.counts()["items"] == 3

    second = tmp_path / "fewer.csv"
    second.write_text("ITEM_ID,GENRES\nd,x\n")
    response = api.http.post(
        api.url("/import-jobs"), json={**body, "path": str(second)}, headers=api.admin
    )
    done = api.wait_for_job(response.json()["id"])
    assert done["status"] == "succeeded" and done["result"]["mode"] == "full"
    assert api.counts()["items"] == 1
    schema = api.http.get(api.url("/schemas/items"), headers=api.admin).json()
    assert schema["fields"]["GENRES"] == "categorical"  # inferred by the first import


def test_bad_import_requests_fail_early(api: Api, tmp_path: Path) -> None:
    missing = {"dataset": "items", "path": str(tmp_path / "nope.csv")}
    response = api.http.post(api.url("/import-jobs"), json=missing, headers=api.admin)
    assert response.status_code == 202  # the file is read in the background
    done = api.wait_for_job(response.json()["id"])
    assert done["status"] == "failed" and "no such file" in done["error"]

    bad_rate = {"dataset": "items", "path": "x.csv", "maxErrorRate": 2}
    response = api.http.post(api.url("/import-jobs"), json=bad_rate, headers=api.admin)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("body.maxErrorRate:")

    url = api.url("/import-jobs/upload?dataset=items&filename=notes.txt")
    response = api.http.post(url, content=b"ITEM_ID\na\n", headers=api.admin)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("filename:")

    response = api.http.post(
        api.url("/import-jobs/upload?dataset=items"), content=b"", headers=api.admin
    )
    assert response.status_code == 422
    assert "empty" in response.json()["error"]["message"]

    url = api.url("/import-jobs/upload?dataset=items", group="no-such-group")
    response = api.http.post(url, content=b"ITEM_ID\na\n", headers=api.admin)
    assert response.status_code == 404
    uploads = api.engine.settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing left behind

    response = api.http.get("/v1/import-jobs/import-nope", headers=api.admin)
    assert response.status_code == 404
