"""The campaigns commands, end to end on an embedded store."""

from __future__ import annotations

import json

from tests.cli.test_solutions import cli  # noqa: F401 (fixture)


def test_deploy_ask_update_rollback_delete(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    code, out, err = cli("campaigns", "create", "home", "--solution", "popular", "--json")
    assert code == 0, err
    assert json.loads(out)["source"] == "rules"  # 720 interactions < 1,000, and no version

    code, out, err = cli("campaigns", "ask", "home", "--user", "u0", "-n", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["source"] == "rules" and len(json.loads(out)["itemList"]) == 3

    code, out, err = cli("train", "popular", "--json")
    version = json.loads(out)["id"]
    code, out, err = cli("campaigns", "update", "home", "--version", version,
                         "--min-interactions", "0", "--json")  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["source"], shown["deployed"], shown["previous"]) == ("model", version, "latest")
    code, out, err = cli("campaigns", "rollback", "home", "--json")
    assert code == 0 and json.loads(out)["deployed"] == "latest"

    code, out, err = cli("campaigns", "update", "home")
    assert code != 0 and "nothing to change" in err
    code, out, err = cli("campaigns", "ask", "home", "--promote", "bad")
    assert code != 0 and "NAME:PERCENT:FILTER" in err
    code, out, err = cli("campaigns", "delete", "home")
    assert code == 0
    code, out, err = cli("campaigns", "show", "home")
    assert code != 0 and "campaign 'home'" in err


def test_explain(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "for-you", "--recipe", "user-personalization",
               "-p", "algorithm=ease")[0] == 0  # fmt: skip
    assert cli("train", "for-you", "--json")[0] == 0
    code, out, err = cli("recommend", "--solution", "for-you", "--user", "u3", "-n", "2",
                         "--explain", "--json")  # fmt: skip
    assert code == 0, err
    for result in json.loads(out)["results"]:
        assert result["reasons"][0]["kind"] == "history"
    code, out, err = cli("recommend", "--solution", "for-you", "--user", "u3", "-n", "2")
    assert code == 0 and "why" not in out
    code, out, err = cli("recommend", "--solution", "for-you", "--user", "u3", "-n", "2",
                         "--explain")  # fmt: skip
    assert code == 0 and "why" in out and "Because you interacted with" in out

    cli("campaigns", "create", "home", "--solution", "for-you", "--min-interactions", "0")
    code, out, err = cli("campaigns", "ask", "home", "--user", "u3", "-n", "2", "--explain",
                         "--json")  # fmt: skip
    assert code == 0, err
    assert all(i["reasons"][0]["kind"] == "history" for i in json.loads(out)["itemList"])
    code, out, err = cli("campaigns", "ask", "home", "--user", "u3", "-n", "2", "--json")
    assert all("reasons" not in i for i in json.loads(out)["itemList"])
