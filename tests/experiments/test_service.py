"""The experiment service on SQLite and PostgreSQL: definitions, states, answers and their
exposures, and the attribution rules (by recommendation id, by window, never another user's)."""

from __future__ import annotations

from typing import Any

import pytest

from tastebud.engine import Engine
from tastebud.errors import AlreadyExists, InvalidInput, NotFound
from tastebud.serving.campaigns import CampaignRequest, Promotion
from tastebud.store import Event
from tests.experiments.conftest import ARMS, events, now


def ask(engine: Engine, group: str, user: str, name: str = "ab", **options: object) -> dict:
    request = CampaignRequest(user_id=user, k=3, **options)  # type: ignore[arg-type]
    return engine.experiments.recommend(group, name, request)


def test_create_validates_and_lists(campaigns: Engine, group: str) -> None:
    service = campaigns.experiments
    with pytest.raises(NotFound, match="campaign 'nope'"):
        service.create(group, "ab", {"control": ("rules-a", 50), "t": ("nope", 50)})
    with pytest.raises(InvalidInput, match="sum to 100"):
        service.create(group, "ab", {"control": ("rules-a", 50), "t": ("rules-b", 60)})
    with pytest.raises(InvalidInput, match="experiment name 'a b'"):
        service.create(group, "a b", ARMS)
    with pytest.raises(InvalidInput, match="attribution_window"):
        service.create(group, "ab", ARMS, attribution_window="soon")
    assert service.list(group) == []  # nothing half-written
    record = service.create(group, "ab", ARMS, metric="click", attribution_window="2h")
    assert record.state == "draft" and record.started_at is None
    shown = service.describe(record)
    assert shown["control"] == "control" and shown["attribution_window_seconds"] == 7_200
    assert [a["campaign"] for a in shown["arms"]] == ["rules-a", "rules-b"]
    with pytest.raises(AlreadyExists):
        service.create(group, "ab", ARMS)
    assert [e.name for e in service.list(group)] == ["ab"]


def test_states_and_what_each_answers(campaigns: Engine, group: str) -> None:
    service = campaigns.experiments
    service.create(group, "ab", ARMS)
    with pytest.raises(InvalidInput, match="is draft; it can become stopped only from running"):
        service.stop(group, "ab")
    users = [f"u{i}" for i in range(30)]
    drafts = [ask(campaigns, group, u) for u in users]
    assert {(a["arm"], a["campaign"], a["exposed"]) for a in drafts} == {
        ("control", "rules-a", False)}  # fmt: skip

    started = service.start(group, "ab")
    assert started.state == "running" and started.started_at is not None
    with pytest.raises(InvalidInput, match="is running"):
        service.start(group, "ab")
    answers = [ask(campaigns, group, u) for u in users]
    for user, answer in zip(users, answers, strict=True):
        arm = service.arm_for("ab", user, group=group)
        assert answer["arm"] == arm and answer["exposed"] is True
        assert answer["campaign"] == dict(ARMS)[arm][0] and answer["experiment"] == "ab"
    assert {a["arm"] for a in answers} == {"control", "treatment"}

    service.stop(group, "ab")
    after = ask(campaigns, group, users[0])
    assert (after["arm"], after["exposed"]) == ("control", False)
    exposures = campaigns.store.read_exposures(group, "ab")
    assert exposures.height == len(users)  # only the running phase's answers
    logged = dict(zip(exposures["recommendation_id"], exposures["arm"], strict=True))
    assert logged == {a["recommendationId"]: a["arm"] for a in answers}


def test_exposure_holds_the_answer(campaigns: Engine, group: str) -> None:
    service = campaigns.experiments
    service.create(group, "ab", ARMS)
    service.start(group, "ab")
    promotion = Promotion("b-items", 50, "genre-b")
    answer = ask(campaigns, group, "u3", promotions=(promotion,))
    with pytest.raises(InvalidInput, match="userId"):
        campaigns.experiments.recommend(group, "ab", CampaignRequest(user_id=None))
    with pytest.raises(NotFound, match="experiment 'nope'"):
        ask(campaigns, group, "u3", name="nope")
    service.exposures.flush()
    store: Any = campaigns.store  # the raw row: reports read only what they need of it
    with store._transaction(write=False) as cur:
        rows = store._run(cur, "SELECT user_id, arm, campaign, source, recommendation_id, items "
                          "FROM exposures WHERE group_id = ?",
                          (store._group_id(cur, group),)).fetchall()  # fmt: skip
    items = "|".join(i["itemId"] for i in answer["itemList"])
    assert [tuple(r) for r in rows] == [("u3", answer["arm"], answer["campaign"], "rules",
                                         answer["recommendationId"], items)]  # fmt: skip
    assert any(i.get("promotionName") == "b-items" for i in answer["itemList"])


def test_attribution_rules(campaigns: Engine, group: str) -> None:
    service = campaigns.experiments
    service.create(group, "ab", ARMS, metric="buy", attribution_window="1h")
    service.start(group, "ab")
    t = now()
    a = ask(campaigns, group, "alice")
    b = ask(campaigns, group, "bob")
    ask(campaigns, group, "carol")
    ask(campaigns, group, "dave")
    events(campaigns, group, [
        # alice: by her answer's id (even hours later), and once by the window
        Event("i1", t + 7_200, "alice", event_type="buy", recommendation_id=a["recommendationId"]),
        Event("i2", t + 60, "alice", event_type="buy", event_value=5.0),
        # bob: within the window, a wrong type (not the metric), and outside the window
        Event("i1", t + 600, "bob", event_type="buy", event_value=2.0),
        Event("i1", t + 700, "bob", event_type="view"),
        Event("i3", t + 3_600 + 5, "bob", event_type="buy"),
        # carol: with bob's recommendation id: another user's answer is not hers
        Event("i1", t + 30, "carol", event_type="buy", recommendation_id=b["recommendationId"]),
        # dave: before his exposure; erin: never exposed
        Event("i1", t - 10, "dave", event_type="buy"),
        Event("i1", t + 10, "erin", event_type="buy"),
        # carol: an id no answer of this experiment has (another campaign's): not by window
        Event("i2", t + 40, "carol", event_type="buy", recommendation_id="rec-elsewhere"),
    ])  # fmt: skip
    report = service.report(group, "ab")
    assert report["attributed_events"] == {"by_recommendation_id": 1, "by_window": 2,
                                           "considered": 7}  # fmt: skip
    rows = {r["arm"]: r for r in report["arms"]}
    converted = {a["arm"]: 0 for a in rows.values()}
    converted[a["arm"]] += 1
    converted[b["arm"]] += 1
    assert {arm: r["conversions"] for arm, r in rows.items()} == converted
    assert sum(r["users"] for r in rows.values()) == 4
    assert sum(r["events"] for r in rows.values()) == 3
    values = sum(r["mean_value"] * r["users"] for r in rows.values())
    assert values == pytest.approx(7.0)
    assert report == service.report(group, "ab")  # idempotent: computed from the store


def test_delete_and_erasure(campaigns: Engine, group: str) -> None:
    service = campaigns.experiments
    service.create(group, "ab", ARMS)
    service.start(group, "ab")
    for user in ("u1", "u2", "u3"):
        ask(campaigns, group, user)
    service.exposures.flush()
    campaigns.delete_users(group, ["u1"])
    assert sorted(campaigns.store.read_exposures(group, "ab")["user_id"]) == ["u2", "u3"]
    service.delete(group, "ab")
    with pytest.raises(NotFound):
        service.get(group, "ab")
    assert campaigns.store.read_exposures(group, "ab").is_empty()
