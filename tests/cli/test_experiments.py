"""The experiments and metrics commands, end to end on an embedded store."""

from __future__ import annotations

import json

from tests.cli.test_solutions import cli  # noqa: F401 (fixture)


def test_experiment_commands(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    for name, order in (("rules-a", "popularity"), ("rules-b", "newest")):
        code, _, err = cli("campaigns", "create", name, "--solution", "popular", "--rules", order)
        assert code == 0, err
    code, out, err = cli("experiments", "create", "ab", "--arm", "control=rules-a:50",
                         "--arm", "treatment=rules-b:50", "--metric", "click",
                         "--attribution-window", "2h", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["attribution_window_seconds"] == 7_200
    code, out, err = cli("experiments", "start", "ab")
    assert code == 0 and "running" in out
    arms = set()
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        code, out, err = cli("experiments", "ask", "ab", "--user", user, "-n", "2", "--json")
        assert code == 0, err
        answer = json.loads(out)
        assert answer["exposed"] and len(answer["itemList"]) == 2
        arms.add(answer["arm"])
    assert arms == {"control", "treatment"}
    code, out, err = cli("experiments", "report", "ab", "--json")
    assert code == 0, err
    assert sum(arm["exposures"] for arm in json.loads(out)["arms"]) == 6
    code, out, err = cli("experiments", "report", "ab")
    assert code == 0 and "control" in out and "sample ratio" in out
    code, out, _ = cli("experiments", "list")
    assert "ab" in out and "running" in out
    assert cli("experiments", "stop", "ab")[0] == 0
    code, out, _ = cli("experiments", "show", "ab", "--json")
    assert json.loads(out)["state"] == "stopped"
    assert cli("experiments", "delete", "ab")[0] == 0
    code, _, err = cli("experiments", "show", "ab")
    assert code == 1 and "experiment 'ab' does not exist" in err


def test_experiment_mistakes_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    assert cli("campaigns", "create", "rules-a", "--solution", "popular")[0] == 0
    code, _, err = cli("experiments", "create", "ab", "--arm", "control=rules-a")
    assert code == 1 and "NAME=CAMPAIGN:WEIGHT" in err and "Traceback" not in err
    code, _, err = cli("experiments", "create", "ab", "--arm", "control=rules-a:50",
                       "--arm", "t=nope:50")  # fmt: skip
    assert code == 1 and "campaign 'nope'" in err
    code, _, err = cli("experiments", "create", "ab", "--arm", "control=rules-a:100")
    assert code == 1 and "at least 2 arms" in err
    code, _, err = cli("experiments", "start", "nope")
    assert code == 1 and "experiment 'nope'" in err


def test_metric_commands(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("schema", "set", "items", "-f", "PRICE=numerical")[0] == 0
    code, _, err = cli("metrics", "create", "rev", "--event-type", "buy",
                       "--expression", "SUM(Items.COST)")  # fmt: skip
    assert code == 1 and "Items.COST is not in the items schema" in err
    code, out, err = cli("metrics", "create", "rev", "--event-type", "buy",
                         "--expression", "SUM(Items.PRICE)")  # fmt: skip
    assert code == 0 and "SUM(Items.PRICE)" in out, err
    code, out, _ = cli("metrics", "list", "--json")
    assert json.loads(out) == [{"name": "rev", "event_type": "buy",
                                "expression": "SUM(Items.PRICE)"}]  # fmt: skip
    code, out, err = cli("metrics", "report", "rev", "--json")
    assert code == 0, err
    assert json.loads(out)["events"] == 0 and json.loads(out)["by_campaign"] == {}
    assert cli("metrics", "delete", "rev")[0] == 0
    code, _, err = cli("metrics", "report", "rev")
    assert code == 1 and "metric attribution 'rev'" in err
