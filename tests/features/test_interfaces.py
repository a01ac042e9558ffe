"""The CLI, the HTTP routes and the SDK over the feature service."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.client import Client
from tastebud.errors import Forbidden, InvalidInput
from tastebud.store import Event
from tests.features.conftest import LIVE
from tests.test_client import client, server  # noqa: F401  (fixtures: a server, a client)


def test_cli_apply_show_read_frame_compute(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "home"

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(home), *args])
        return result.exit_code, result.stdout, result.stderr

    declaration = tmp_path / "features.yaml"
    declaration.write_text(LIVE + "  - {name: aff, kind: batch, entity: user, "
                           "aggregation: count, days: 60}\n")  # fmt: skip
    code, out, err = run("features", "apply", str(declaration))
    assert code == 0, err
    assert "features version 1" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: [{name: x, kind: counter, aggregation: count, window: 5x}]")
    code, _, err = run("features", "apply", str(bad))
    assert code == 1 and "feature 'x'.window: expected a duration" in err
    now = int(time.time())
    events = pl.DataFrame({"USER_ID": ["u1", "u2", "u1"], "ITEM_ID": ["s1", "s1", "s2"],
                           "TIMESTAMP": [now - 60, now - 30, now - 10],
                           "EVENT_TYPE": ["watch"] * 3})  # fmt: skip
    events.write_csv(tmp_path / "events.csv")
    assert run("import", str(tmp_path / "events.csv"), "--dataset", "interactions")[0] == 0
    code, out, err = run("features", "read", "s1", "s2", "--user", "u1",
                         "--features", "views_5m,pair_7d", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["values"] == [[2.0, 1.0], [1.0, 1.0]]
    code, out, err = run("features", "compute", "--json")
    assert code == 0 and json.loads(out)["features"] == {"aff": 2}, err
    code, out, _ = run("features", "show", "--json")
    assert json.loads(out)["computations"]["aff"]["entities"] == 2
    code, out, _ = run("features", "list", "--json")
    assert [f["name"] for f in json.loads(out)["features"]][:2] == ["views_5m", "viewers_1h"]
    events.select("USER_ID", "ITEM_ID", "TIMESTAMP", pl.lit(1).alias("LABEL")).write_parquet(
        tmp_path / "labels.parquet"
    )
    labels, frame = str(tmp_path / "labels.parquet"), str(tmp_path / "f.parquet")
    code, out, err = run("features", "frame", "--labels", labels, "--features", "views_5m",
                         "--output", frame)  # fmt: skip
    assert code == 0, err
    assert pl.read_parquet(tmp_path / "f.parquet")["views_5m"].to_list() == [0.0, 1.0, 0.0]
    code, out, err = run("features", "frame", "--output", str(tmp_path / "g.csv"))
    assert code == 0 and pl.read_csv(tmp_path / "g.csv").height == 3, err


def test_http_and_sdk(client: Client, server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    applied = client.apply_features(LIVE)
    assert applied["version"] == 1 and "views_5m" in applied["columns"]
    assert client.apply_features(json.loads(json.dumps({"features": [
        {"name": "views", "kind": "counter", "aggregation": "count", "window": "5m"}]})
    ))["version"] == 2  # fmt: skip
    with pytest.raises(InvalidInput, match=r"feature 'v'\.window"):
        client.apply_features("features: [{name: v, kind: counter, aggregation: count, "
                              "window: 5x}]")  # fmt: skip
    assert client.get_features()["columns"] == ["views"]
    now = int(time.time())
    server.engine.tracker.put(client.group, [
        Event(item_id="s1", user_id="u1", timestamp=now - 5, event_type="watch")])  # fmt: skip
    read = client.online_features(["s1", "s2"], user_id="u1")
    assert read == {"names": ["views"], "itemIds": ["s1", "s2"], "values": [[1.0], [0.0]]}
    assert client.compute_features()["features"] == {}
    ingest = server.engine.create_token(f"{client.group}-ingest", scope="ingest")
    with Client(server.url, token=ingest, group=client.group) as writer, pytest.raises(Forbidden):
        writer.online_features(["s1"])
