"""Exports stream a dataset back as CSV or Parquet; both round-trip the rows."""

from __future__ import annotations

import io

import polars as pl
import pytest

from ..conftest import Api


@pytest.fixture
def filled(api: Api) -> Api:
    schema = {"fields": {"GENRES": "categorical", "PRICE": "numerical"}}
    api.http.put(api.url("/schemas/items"), json=schema, headers=api.admin)
    items = {
        "items": [
            {
                "itemId": "i1",
                "properties": {
                    "GENRES": ["drama", "comedy"],
                    "PRICE": 9.5,
                    "CREATION_TIMESTAMP": 1_600_000_000,
                },
            },
            {"itemId": "i2", "properties": {"GENRES": "news"}},
        ]
    }
    assert api.http.post(api.url("/items"), json=items, headers=api.ingest).status_code == 200
    events = {
        "userId": "u1",
        "eventList": [
            {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000, "eventId": "e1"},
            {"itemId": "i2", "eventType": "buy", "eventValue": 3.0, "sentAt": 1_700_000_050},
        ],
    }
    assert api.http.post(api.url("/events"), json=events, headers=api.ingest).status_code == 200
    return api


def export(api: Api, dataset: str, format_: str) -> pl.DataFrame:
    response = api.http.post(
        api.url("/exports"), json={"dataset": dataset, "format": format_}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    assert f'filename="{api.group}-{dataset}.{format_}"' in response.headers["content-disposition"]
    frame = (
        pl.read_csv(io.BytesIO(response.content), infer_schema=False)
        if format_ == "csv"
        else pl.read_parquet(io.BytesIO(response.content))
    )
    assert int(response.headers["X-Tastebud-Rows"]) == frame.height
    return frame


@pytest.mark.parametrize("format_", ["csv", "parquet"])
def test_export_round_trips_the_rows(filled: Api, format_: str) -> None:
    items = export(filled, "items", format_).sort("ITEM_ID")
    assert items["ITEM_ID"].to_list() == ["i1", "i2"]
    assert items["GENRES"].to_list() == ["drama|comedy", "news"]
    assert [None if p is None else float(p) for p in items["PRICE"]] == [9.5, None]
    assert str(items["CREATION_TIMESTAMP"][0]) == "1600000000"

    events = export(filled, "interactions", format_)
    assert events["USER_ID"].to_list() == ["u1", "u1"]
    assert events["ITEM_ID"].to_list() == ["i1", "i2"]
    assert [int(t) for t in events["TIMESTAMP"]] == [1_700_000_000, 1_700_000_050]
    assert events["EVENT_TYPE"].to_list() == ["click", "buy"]
    assert events["EVENT_ID"].to_list()[0] == "e1"
    exports = filled.engine.settings.home / "exports"
    assert not any(exports.iterdir())  # the server's copy is removed once sent


def test_export_of_an_empty_dataset_has_its_columns(api: Api) -> None:
    users = export(api, "users", "csv")
    assert users.height == 0 and users.columns == ["USER_ID"]


def test_bad_export_format_is_422(api: Api) -> None:
    response = api.http.post(
        api.url("/exports"), json={"dataset": "items", "format": "xlsx"}, headers=api.admin
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("body.format:")
