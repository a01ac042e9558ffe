"""The campaigns commands, end to end on an embedded store."""

from __future__ import annotations

import json
import shutil

from tests.cli.test_solutions import cli  # noqa: F401 (fixture)
from tests.serving.test_precomputed import REDIS_URL, prefix, write  # noqa: F401 (fixture)


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


def test_precomputed_options(cli, tmp_path, prefix: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    code, out, err = cli("train", "popular", "--json")
    version = json.loads(out)["id"]
    code, out, err = cli("campaigns", "create", "home", "--solution", "popular",
                         "--min-interactions", "0", "--precomputed", REDIS_URL,
                         "--precomputed-overload-share", "off", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["config"]["precomputed"] == {
        "url": REDIS_URL, "key_prefix": "recs:", "overload_share": None}  # fmt: skip
    code, out, err = cli("campaigns", "update", "home", "--precomputed", "off", "--json")
    assert code == 0 and json.loads(out)["config"]["precomputed"] is None

    code, out, err = cli("campaigns", "update", "home", "--precomputed-prefix", "x:")
    assert code != 0 and "need --precomputed URL" in err
    code, out, err = cli("campaigns", "update", "home", "--precomputed", REDIS_URL,
                         "--precomputed-overload-share", "lots")  # fmt: skip
    assert code != 0 and "'lots'" in err
    code, out, err = cli("campaigns", "create", "other", "--solution", "popular",
                         "--precomputed", "http://x:1/0")  # fmt: skip
    assert code != 0 and "precomputed url" in err and "http://x:1/0" in err

    code, out, err = cli("campaigns", "update", "home", "--precomputed", REDIS_URL,
                         "--precomputed-prefix", prefix, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["config"]["precomputed"] == {
        "url": REDIS_URL, "key_prefix": prefix, "overload_share": 0.8}  # fmt: skip
    # A fresh process whose deployed version's artifacts are gone answers from Redis.
    write(prefix, {"u0": ["i39", "i38", "i37"]}, version=version)  # unseen by u0
    shutil.rmtree(tmp_path / "home" / "artifacts" / version)
    code, out, err = cli("campaigns", "ask", "home", "--user", "u0", "-n", "2", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["source"] == "precomputed" and answer["solutionVersionId"] == version
    assert [i["itemId"] for i in answer["itemList"]] == ["i39", "i38"]
    code, out, err = cli("campaigns", "ask", "home", "--user", "u0", "-n", "2")
    assert code == 0 and "precomputed" in out
    code, out, err = cli("campaigns", "show", "home", "--json")
    assert code == 0 and json.loads(out)["source"] == "precomputed"


def test_fallback_options(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    assert cli("train", "popular", "--json")[0] == 0
    code, out, err = cli("campaigns", "create", "home", "--solution", "popular",
                         "--fallback", "rules", "--deadline-ms", "150", "--json")  # fmt: skip
    assert code == 0, err
    config = json.loads(out)["config"]
    assert (config["fallback"], config["deadline_ms"]) == ("rules", 150.0)
    code, out, err = cli("campaigns", "update", "home", "--fallback", "none")
    assert code != 0 and "deadline_ms needs fallback" in err  # the deadline would do nothing
    code, out, err = cli("campaigns", "update", "home", "--fallback", "sometimes")
    assert code != 0 and "fallback" in err and "sometimes" in err
