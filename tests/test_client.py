"""The Python client against a real server: uvicorn on a free local port, in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest
import uvicorn

from tastebud.api.app import create_app
from tastebud.client import Client, ImportFailed, JobFailed, _error
from tastebud.engine import Engine
from tastebud.errors import (
    WIRE_ERRORS,
    AlreadyExists,
    FilterSyntaxError,
    Forbidden,
    InvalidInput,
    NotFound,
    NotReady,
    PayloadTooLarge,
    TastebudError,
    TooManyRequests,
    Unauthorized,
)
from tastebud.settings import ApiSettings, Settings
from tests.serving.test_precomputed import prefix  # noqa: F401 (fixture)

BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Server:
    url: str
    engine: Engine
    admin_token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"), api=ApiSettings(max_body_bytes=BODY_LIMIT)
    )
    with Engine(settings) as engine:
        admin_token = engine.create_token("admin", scope="admin")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(create_app(settings, engine=engine), log_level="warning")
        uvicorn_server = uvicorn.Server(config)
        thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]})
        thread.start()
        deadline = time.monotonic() + 10
        while not uvicorn_server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        port = sock.getsockname()[1]
        try:
            yield Server(f"http://127.0.0.1:{port}", engine, admin_token)
        finally:
            uvicorn_server.should_exit = True
            thread.join(10)
            sock.close()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    """An admin client on a fresh dataset group of its own."""
    group = f"sdk-{uuid.uuid4().hex[:10]}"
    with Client(server.url, token=server.admin_token, group=group) as client:
        client.create_group(group)
        yield client


def test_health_and_dataset_groups(client: Client) -> None:
    assert client.health()["status"] == "ok"
    assert client.group in {g["name"] for g in client.list_groups()}
    assert client.get_group()["name"] == client.group
    with pytest.raises(AlreadyExists, match="already exists"):
        client.create_group(client.group)
    other = f"{client.group}-x"
    assert client.create_group(other)["name"] == other
    client.delete_group(other)
    with pytest.raises(NotFound, match=f"dataset group '{other}' does not exist"):
        client.get_group(other)


def test_events_round_trip(client: Client) -> None:
    assert client.put_schema("interactions", {"DEVICE": "categorical"})["fields"]["DEVICE"] == (
        "categorical"
    )
    assert client.get_schema("interactions")["fields"]["DEVICE"] == "categorical"
    events = [
        {
            "itemId": "i1",
            "eventType": "click",
            "eventId": "e1",
            "sentAt": 1_700_000_000,
            "properties": {"DEVICE": "tv"},
        },
        {"itemId": "i2", "eventType": "watch", "eventValue": 12.0, "sentAt": 1_700_000_060},
    ]
    assert client.put_events(events, user_id="u1", session_id="s1") == {
        "accepted": 2,
        "duplicates": 0,
    }
    assert client.put_events(events[:1], user_id="u1")["duplicates"] == 1
    recent = client.recent_events("u1")
    assert [(e["itemId"], e["eventType"]) for e in recent] == [("i1", "click"), ("i2", "watch")]
    assert recent[0]["properties"] == {"DEVICE": "tv"} and recent[1]["eventValue"] == 12.0
    assert [e["itemId"] for e in client.recent_events("u1", limit=1)] == ["i2"]
    assert client.status()["counts"]["interactions"] == 2


def test_items_users_and_erasure(client: Client) -> None:
    client.put_schema("items", {"GENRES": "categorical"})
    assert (
        client.put_items([{"itemId": "i1", "properties": {"GENRES": ["a", "b"]}}, {"itemId": "i2"}])
        == 2
    )
    assert client.put_users([{"userId": "u1"}, {"userId": "u2"}]) == 2
    client.put_events([{"itemId": "i1"}], user_id="u1")
    assert client.delete_users(["u1", "ghost"]) == 1
    counts = client.status()["counts"]
    assert counts["users"] == 1 and counts["interactions"] == 0 and counts["items"] == 2
    assert client.recent_events("u1") == []


def test_import_file_waits_for_the_job(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1700000000\nu1,i2,oops\nu2,i1,1700000100\n"
        "u2,i3,1700000200\n"
    )
    job = client.import_file(path, dataset="interactions", max_error_rate=0.5, poll_interval=0.02)
    assert job["status"] == "succeeded"
    assert job["result"] is not None
    assert (job["result"]["accepted"], job["result"]["rejected"]) == (3, 1)
    rejects = pl.read_csv(job["result"]["rejectsFile"])
    assert rejects["line"].to_list() == [3] and rejects["row"].to_list() == ["u1,i2,oops"]
    assert client.import_job(job["id"])["status"] == "succeeded"
    assert [j["id"] for j in client.import_jobs()] == [job["id"]]

    with pytest.raises(ImportFailed, match="over the error budget") as failed:
        client.import_file(path, dataset="interactions", max_error_rate=0.0, poll_interval=0.02)
    assert failed.value.job["status"] == "failed"
    assert client.status()["counts"]["interactions"] == 3  # the failed import stored nothing

    queued = client.import_file(
        path, dataset="interactions", mode="full", max_error_rate=0.5, wait=False
    )
    assert queued["status"] in ("queued", "running", "succeeded")
    done = client.wait_for_job(queued["id"], poll_interval=0.02, timeout=20)
    assert done["result"] is not None and done["result"]["mode"] == "full"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips(client: Client, tmp_path: Path, suffix: str) -> None:
    client.put_schema("users", {"TIER": "categorical", "AGE": "numerical"})
    users = [
        {"userId": f"u{n}", "properties": {"TIER": "gold" if n % 2 else "free", "AGE": n}}
        for n in range(5)
    ]
    client.put_users(users)
    path = tmp_path / "out" / f"users{suffix}"
    assert client.export("users", path) == 5
    frame = pl.read_csv(path) if suffix == ".csv" else pl.read_parquet(path)
    frame = frame.sort("USER_ID")
    assert frame["USER_ID"].to_list() == [f"u{n}" for n in range(5)]
    assert frame["TIER"].to_list() == ["free", "gold", "free", "gold", "free"]
    assert [float(a) for a in frame["AGE"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert not path.with_name(path.name + ".partial").exists()
    with pytest.raises(InvalidInput, match=r"export to \.csv or \.parquet"):
        client.export("users", tmp_path / "users.xlsx")


def test_solutions_train_and_recommend(client: Client, tmp_path: Path) -> None:
    from tests.serving.conftest import write_clustered

    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count", params={"half_life_days": 30})
    assert [s["name"] for s in client.list_solutions()] == ["popular"]
    version = client.train("popular", poll_interval=0.02)
    assert version["status"] == "active" and version["metrics"] is not None
    assert [v["id"] for v in client.solution_versions("popular")] == [version["id"]]
    answer = client.recommend("u0", solution="popular", num_results=4)
    assert len(answer["itemList"]) == 4 and answer["solutionVersionId"] == version["id"]
    ranked = client.rank("u0", ["i3", "unknown", "i1"], version_id=version["id"])
    assert ranked["itemList"][-1] == {"itemId": "unknown", "score": None}
    explained = client.recommend("u0", solution="popular", num_results=2, explain=True)
    assert [i["reasons"][0]["kind"] for i in explained["itemList"]] == ["popularity"] * 2
    assert client.rank("u0", ["i3"], solution="popular", explain=True)["itemList"][0]["reasons"]
    with pytest.raises(InvalidInput, match="does not answer similar items"):
        client.similar_items("i1", solution="popular")

    client.create_solution("picky", "popularity-count", event_weights={"purchase": 1.0})
    with pytest.raises(JobFailed, match="no interactions"):
        client.train("picky", poll_interval=0.02)
    client.delete_solution("picky")


def test_embeddings(client: Client, tmp_path: Path) -> None:
    from tests.serving.conftest import write_clustered

    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("als", "user-personalization", params={"algorithm": "als",
                                                                  "factors": 4})  # fmt: skip
    first = client.train("als", poll_interval=0.02)
    second = client.train("als", poll_interval=0.02)
    items = client.item_embeddings("als", ["i1", "i2"])
    old = client.item_embeddings("als", ["i1", "i2"], version_id=first["id"])
    assert items["solutionVersionId"] == second["id"] and old["spaceId"] == items["spaceId"]
    assert [len(e["vector"]) for e in items["embeddings"]] == [4, 4]
    assert client.user_embeddings("als", ["u3"])["embeddings"][0]["id"] == "u3"
    with pytest.raises(NotFound, match="'nobody'"):
        client.user_embeddings("als", ["nobody"])


def test_campaigns(client: Client, tmp_path: Path) -> None:
    from tests.serving.conftest import write_clustered

    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count")
    created = client.create_campaign("home", "popular", config={"minInteractions": 0})
    assert created["source"] == "rules" and created["solutionVersionId"] is None
    first = client.campaign_recommend("home", "u0", num_results=3)
    assert first["source"] == "rules" and len(first["itemList"]) == 3
    version = client.train("popular", poll_interval=0.02)
    pinned = client.update_campaign("home", version_id=version["id"])
    assert pinned["source"] == "model" and pinned["previous"] == "latest"
    client.create_filter("tail", 'EXCLUDE ItemID WHERE Items.ITEM_ID IN ("i0")')
    promoted = client.campaign_recommend(
        "home", "u0", num_results=5,
        promotion={"name": "p", "percentPromotedItems": 40, "filterName": "tail"},
    )  # fmt: skip
    assert sum("promotionName" in i for i in promoted["itemList"]) == 2
    assert all("reasons" not in i for i in promoted["itemList"])
    explained = client.campaign_recommend(
        "home", "u0", num_results=5, explain=True,
        promotion={"name": "p", "percentPromotedItems": 40, "filterName": "tail"},
    )  # fmt: skip
    for item in explained["itemList"]:
        kind = "promotion" if "promotionName" in item else "popularity"
        assert item["reasons"][0]["kind"] == kind
    assert client.rollback_campaign("home")["deployed"] == "latest"
    assert [c["name"] for c in client.list_campaigns()] == ["home"]
    client.delete_campaign("home")
    with pytest.raises(NotFound, match="campaign 'home'"):
        client.get_campaign("home")


def test_batch_jobs(client: Client, tmp_path: Path) -> None:
    from tests.serving.conftest import write_clustered

    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count")
    version = client.train("popular", poll_interval=0.02)
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"userId": "u0"}\n{"itemId": "i1"}\n')
    job = client.start_batch_job(str(source), str(output), solution="popular", num_results=3,
                                 max_error_rate=0.5, poll_interval=0.02)  # fmt: skip
    assert job["result"] is not None and job["result"]["solutionVersion"] == version["id"]
    first, second = (json.loads(line) for line in output.read_text().splitlines())
    expected = client.recommend("u0", solution="popular", num_results=3)["itemList"]
    assert first["output"]["recommendedItems"] == [i["itemId"] for i in expected]
    assert "does not answer similar items" in second["error"]
    with pytest.raises(JobFailed, match="over the error budget"):
        client.start_batch_job(str(source), str(output), solution="popular", poll_interval=0.02)


def test_campaign_with_a_precomputed_source(
    client: Client,
    server: Server,
    tmp_path: Path,
    prefix: str,  # noqa: F811
) -> None:
    import shutil

    from tests.serving.conftest import write_clustered
    from tests.serving.test_precomputed import REDIS_URL, write

    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count")
    version = client.train("popular", poll_interval=0.02)["id"]
    source = {"url": REDIS_URL, "keyPrefix": prefix, "overloadShare": 0.9}
    config = {"minInteractions": 0, "precomputed": source}
    created = client.create_campaign("home", "popular", config=config)
    assert created["config"]["precomputed"] == {
        "url": REDIS_URL, "key_prefix": prefix, "overload_share": 0.9}  # fmt: skip
    assert client.campaign_recommend("home", "u0", num_results=5)["source"] == "model"

    write(prefix, {"u0": ["i39", "i38", "i37"]}, version=version)  # unseen by u0
    shutil.rmtree(server.engine.settings.artifacts / version)
    server.engine.recommender.forget_loaded()
    answer = client.campaign_recommend("home", "u0", num_results=2)
    assert answer["source"] == "precomputed" and answer["solutionVersionId"] == version
    assert [i["itemId"] for i in answer["itemList"]] == ["i39", "i38"]
    assert client.get_campaign("home")["source"] == "precomputed"
    with pytest.raises(InvalidInput, match="precomputed url"):
        client.update_campaign("home", config={"precomputed": {"url": "memcached://x"}})
    client.delete_campaign("home")


def test_tokens_and_scopes(client: Client, server: Server) -> None:
    name = f"{client.group}-ingest"
    created = client.create_token(name, scope="ingest")
    assert created["scope"] == "ingest" and created["token"].startswith("tb_")
    assert name in {t["name"] for t in client.list_tokens()}
    with Client(server.url, token=created["token"], group=client.group) as ingest:
        assert ingest.put_events([{"itemId": "i1"}], user_id="u1")["accepted"] == 1
        with pytest.raises(Forbidden, match="needs 'admin'"):
            ingest.status()
        with pytest.raises(Forbidden):
            ingest.recent_events("u1")
        client.revoke_token(name)
        with pytest.raises(Forbidden, match="unknown or revoked token"):
            ingest.put_events([{"itemId": "i1"}], user_id="u1")
    with pytest.raises(NotFound):
        client.revoke_token(name)


def test_errors_carry_the_server_message(client: Client, server: Server) -> None:
    with Client(server.url, token="wrong", group=client.group) as stranger:
        assert stranger.health()["status"] == "ok"  # no token needed
        with pytest.raises(Forbidden, match="unknown or revoked token"):
            stranger.status()
    with pytest.raises(InvalidInput, match=r"^eventList\[0\]\.properties\.COLOR: unknown field"):
        client.put_events([{"itemId": "i1", "properties": {"COLOR": "red"}}], user_id="u1")
    with pytest.raises(InvalidInput, match=r"body\.eventList\[1\]\.itemId: Field required"):
        client.put_events([{"itemId": "i1"}, {"eventType": "click"}], user_id="u1")
    with pytest.raises(PayloadTooLarge, match="1001 events, at most 1000"):
        client.put_events([{"itemId": "i"}] * 1001, user_id="u1")
    with pytest.raises(PayloadTooLarge, match="request body"):
        client.put_events([{"itemId": "i" * 200}] * 400, user_id="u1")  # ~90 KB
    client.group = "no-such-group"
    with pytest.raises(NotFound, match="dataset group 'no-such-group' does not exist"):
        client.put_events([{"itemId": "i1"}], user_id="u1")


def test_streamed_body_over_the_limit_over_a_socket(client: Client, server: Server) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"userId": "u1", "eventList": ['
        for _ in range(200):  # 200 chunks of 4 KB: over the 64 KB limit by far
            sent += 1
            yield b'{"itemId": "' + b"x" * 4000 + b'"},'
        yield b'{"itemId": "last"}]}'

    headers = {"Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url) as http:
        response = http.post(
            f"/v1/dataset-groups/{client.group}/events", content=body(), headers=headers
        )
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "PayloadTooLarge"
        assert "content-length" not in response.request.headers
        # The connection stays usable for the next request.
        assert http.get("/health").status_code == 200
    assert client.status()["counts"]["interactions"] == 0


def test_unreachable_server_raises_httpx_errors() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with (
        Client(f"http://127.0.0.1:{port}", token="t", timeout=2) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.health()


@pytest.mark.parametrize("error_type", WIRE_ERRORS, ids=lambda cls: cls.__name__)
def test_each_error_type_of_the_api_raises_its_own_exception(
    error_type: type[TastebudError],
) -> None:
    body = {"error": {"type": error_type.__name__, "message": "what went wrong"}}
    headers = {"Retry-After": "3"} if error_type.status_code in (429, 503) else {}
    response = httpx.Response(error_type.status_code, json=body, headers=headers)
    raised = _error(response)
    assert type(raised) is error_type and raised.message == "what went wrong"
    assert raised.retry_after == (3.0 if headers else None)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, Unauthorized), (404, NotFound), (503, NotReady), (429, TooManyRequests),
     (502, TastebudError)],
)  # fmt: skip
def test_an_answer_not_from_tastebud_maps_by_its_status(
    status: int, expected: type[TastebudError]
) -> None:
    raised = _error(httpx.Response(status, text="<html>bad gateway</html>"))
    assert type(raised) is expected and "bad gateway" in raised.message


def test_the_server_errors_raise_their_types(client: Client, server: Server) -> None:
    with (
        Client(server.url, token="wrong", group=client.group) as stranger,
        pytest.raises(Unauthorized, match="unknown or revoked token"),
    ):
        stranger.status()
    name = f"{client.group}-reader"
    token = client.create_token(name, scope="recommend")["token"]
    with Client(server.url, token=token, group=client.group) as reader:
        with pytest.raises(Forbidden) as forbidden:
            reader.status()
        assert type(forbidden.value) is Forbidden
    client.revoke_token(name)
    with pytest.raises(AlreadyExists):
        client.create_group(client.group)
    with pytest.raises(FilterSyntaxError):
        client.validate_filter("SELECT *")
