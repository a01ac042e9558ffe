"""Console sign-in, scopes and errors, through the app's test client (no browser)."""

from __future__ import annotations

import pytest

from tastebud.console.session import COOKIE
from tests.console.conftest import HX, Console


def test_pages_need_a_session(console: Console) -> None:
    console.http.cookies.clear()
    page = console.http.get(console.url("data"), follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == f"/console/signin?next=/console/groups/{console.group}/data"
    fragment = console.http.post(
        console.url("filters/validate"),
        headers=HX,
        data={"expression": "x"},
        follow_redirects=False,
    )
    assert fragment.status_code == 204 and fragment.headers["HX-Redirect"].startswith(
        "/console/signin"
    )


def test_sign_in_keeps_the_token_in_an_http_only_cookie(console: Console) -> None:
    console.http.cookies.clear()
    refused = console.http.post("/console/signin", data={"token": "tb_nope"})
    assert refused.status_code == 401 and "unknown or revoked token" in refused.text
    assert COOKIE not in console.http.cookies
    signed = console.http.post(
        "/console/signin",
        data={"token": console.admin_token, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/console/"  # not away
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert console.http.get(console.url()).status_code == 200
    console.http.post("/console/signout")
    assert console.http.get(console.url(), follow_redirects=False).status_code == 303


def test_a_revoked_token_signs_the_session_out(console: Console) -> None:
    name = f"{console.group}-short"
    token = console.engine.create_token(name, scope="admin")
    console.sign_in(token)
    assert console.http.get(console.url("data")).status_code == 200
    console.engine.revoke_token(name)
    console.http.app.state.verifier.forget()  # type: ignore[attr-defined]
    assert console.http.get(console.url("data"), follow_redirects=False).status_code == 303


def test_a_recommend_token_opens_try_it_and_reels_only(console: Console) -> None:
    token = console.engine.create_token(f"{console.group}-reader", scope="recommend")
    console.sign_in(token)
    front = console.http.get("/console/", follow_redirects=False)
    assert front.headers["location"] == f"/console/groups/{console.group}/try"
    page = console.http.get(console.url("try"))
    assert page.status_code == 200
    assert ">Try it<" in page.text and ">Overview<" not in page.text  # the menu it may use
    assert ">Reels<" in page.text and ">Messages<" not in page.text
    assert console.http.get(console.url("reels")).status_code == 200
    admin_pages = ("", "data", "solutions", "filters", "campaigns", "experiments", "messages")
    for admin_page in admin_pages:
        refused = console.http.get(console.url(admin_page))
        assert refused.status_code == 403, admin_page
        assert "has scope &#39;recommend&#39;; this needs &#39;admin&#39;" in refused.text


def test_an_ingest_token_opens_nothing(console: Console) -> None:
    console.sign_in(console.engine.create_token(f"{console.group}-ingest", scope="ingest"))
    refused = console.http.get(console.url("try"))
    assert refused.status_code == 403 and "reading recommendations needs" in refused.text


def test_errors_show_the_api_message_never_a_trace(console: Console) -> None:
    missing = console.http.get("/console/groups/no-such-group/data")
    assert missing.status_code == 404
    assert "dataset group &#39;no-such-group&#39; does not exist" in missing.text
    assert console.http.get(console.url("no-such-page")).status_code == 404
    bad_page = console.http.get(console.url("solutions?page=x"))
    assert bad_page.status_code == 422 and "page: expected a page number" in bad_page.text


def test_an_unexpected_failure_is_a_plain_500(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(group: str) -> dict[str, int]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(console.engine, "counts", broken)
    failed = console.http.get(console.url())
    assert failed.status_code == 500
    assert "internal server error (see the server log)" in failed.text
    assert "secret internals" not in failed.text and "Traceback" not in failed.text


def test_forms_from_another_site_are_refused(console: Console) -> None:
    sent = console.http.post(
        console.url("filters/validate"),
        data={"expression": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert sent.status_code == 403 and "console forms are accepted from the console" in sent.text
