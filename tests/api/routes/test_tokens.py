"""API tokens: created once, listed without secrets, revoked for good."""

from __future__ import annotations

from ..conftest import Api, bearer


def test_token_lifecycle(api: Api) -> None:
    name = f"{api.group}-sdk"
    created = api.http.post("/v1/tokens", json={"name": name, "scope": "ingest"}, headers=api.admin)
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["name"] == name and token["scope"] == "ingest"
    assert token["token"].startswith("tb_")

    listed = api.http.get("/v1/tokens", headers=api.admin).json()["tokens"]
    mine = [t for t in listed if t["name"] == name]
    assert mine == [{"name": name, "scope": "ingest", "createdAt": token["createdAt"]}]
    assert all("token" not in t for t in listed)  # secrets are never listed

    events = {"userId": "u1", "eventList": [{"itemId": "i1"}]}
    ok = api.http.post(api.url("/events"), json=events, headers=bearer(token["token"]))
    assert ok.status_code == 200  # also puts the token in the verifier's cache

    revoked = api.http.delete(f"/v1/tokens/{name}", headers=api.admin)
    assert revoked.status_code == 204
    after = api.http.post(api.url("/events"), json=events, headers=bearer(token["token"]))
    assert after.status_code == 401  # at once, despite the cache
    assert api.http.delete(f"/v1/tokens/{name}", headers=api.admin).status_code == 404


def test_token_names_are_unique_and_scopes_checked(api: Api) -> None:
    name = f"{api.group}-twice"
    first = api.http.post("/v1/tokens", json={"name": name}, headers=api.admin)
    assert first.status_code == 201 and first.json()["scope"] == "ingest"  # the default
    second = api.http.post("/v1/tokens", json={"name": name}, headers=api.admin)
    assert second.status_code == 409
    bad = api.http.post(
        "/v1/tokens", json={"name": f"{name}-2", "scope": "root"}, headers=api.admin
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("body.scope:")
