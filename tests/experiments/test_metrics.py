"""Metric attributions: expressions checked against the items schema, campaign answers logged
only while a group has one, and events summed per campaign, source, arm and promotion."""

from __future__ import annotations

import pytest

from tastebud.engine import Engine
from tastebud.errors import AlreadyExists, InvalidInput, NotFound
from tastebud.serving.campaigns import CampaignRequest, Promotion
from tastebud.store import Event
from tests.experiments.conftest import ARMS, events, now


def price(item_id: str) -> float:
    return float(item_id.removeprefix("i")) + 1  # the fixture's prices


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("SUM(PRICE)", "expected SAMPLECOUNT\\(\\) or SUM\\(Items.FIELD\\)"),
        ("AVG(Items.PRICE)", "expected SAMPLECOUNT"),
        ("SUM(Items.GENRES)", "Items.GENRES is declared as categorical; SUM needs a numerical "
         "field \\(numerical fields: PRICE\\)"),
        ("SUM(Items.COST)", "Items.COST is not in the items schema"),
    ],
)  # fmt: skip
def test_bad_expressions_are_named(campaigns: Engine, group: str, expression: str,
                                   message: str) -> None:  # fmt: skip
    with pytest.raises(InvalidInput, match=message):
        campaigns.experiments.metrics.create(group, "m", event_type="buy", expression=expression)
    assert campaigns.experiments.metrics.list(group) == []


def test_metrics_per_source(campaigns: Engine, group: str) -> None:
    metrics = campaigns.experiments.metrics
    plain = campaigns.campaign_answer(group, "rules-a", CampaignRequest(user_id="u9", k=3))
    metrics.answers.flush()
    assert campaigns.store.read_answers(group).is_empty()  # no metric yet: nothing logged

    revenue = metrics.create(group, "revenue", event_type="buy", expression="sum(Items.PRICE)")
    assert revenue.expression == "SUM(Items.PRICE)"
    metrics.create(group, "buys", event_type="buy", expression="SAMPLECOUNT()")
    with pytest.raises(AlreadyExists):
        metrics.create(group, "buys", event_type="buy", expression="SAMPLECOUNT()")
    assert [m.name for m in metrics.list(group)] == ["buys", "revenue"]

    first = campaigns.campaign_answer(group, "rules-a", CampaignRequest(user_id="u1", k=3))
    again = campaigns.campaign_answer(group, "rules-a", CampaignRequest(user_id="u1", k=3))
    assert again["cache"] == "hit" and again["recommendationId"] == first["recommendationId"]
    promoted = campaigns.campaign_answer(group, "rules-b", CampaignRequest(
        user_id="u2", k=4, promotions=(Promotion("b-items", 50, "genre-b"),)))  # fmt: skip
    promo_items = [i["itemId"] for i in promoted["itemList"] if i.get("promotionName")]
    regular_items = [i["itemId"] for i in promoted["itemList"] if not i.get("promotionName")]
    assert promo_items and regular_items
    campaigns.experiments.create(group, "ab", ARMS)
    campaigns.experiments.start(group, "ab")
    tested = campaigns.experiments.recommend(group, "ab", CampaignRequest(user_id="u3", k=2))

    t = now()
    events(campaigns, group, [
        Event(first["itemList"][0]["itemId"], t, "u1", event_type="buy",
              recommendation_id=first["recommendationId"]),
        Event(promo_items[0], t, "u2", event_type="buy",
              recommendation_id=promoted["recommendationId"]),
        Event(regular_items[0], t, "u2", event_type="buy",
              recommendation_id=promoted["recommendationId"]),
        Event(tested["itemList"][0]["itemId"], t, "u3", event_type="buy",
              recommendation_id=tested["recommendationId"]),
        Event("i5", t, "u1", event_type="buy", recommendation_id=plain["recommendationId"]),
        Event("i5", t, "u1", event_type="buy"),
        Event("i5", t, "u1", event_type="view", recommendation_id=first["recommendationId"]),
    ])  # fmt: skip
    counted = campaigns.experiments.metric_report(group, "buys")
    assert (counted["events"], counted["attributed"], counted["unattributed"]) == (6, 4, 2)
    by_campaign = {k: v["events"] for k, v in counted["by_campaign"].items()}
    expected = {"rules-a": 1, "rules-b": 2}
    expected[tested["campaign"]] += 1
    assert by_campaign == expected
    assert counted["by_source"] == {"rules": {"events": 4, "value": 4.0}}
    assert counted["by_promotion"] == {"b-items": {"events": 1, "value": 1.0},
                                       "none": {"events": 3, "value": 3.0}}  # fmt: skip
    assert counted["by_experiment_arm"] == {f"ab/{tested['arm']}": {"events": 1, "value": 1.0}}

    summed = campaigns.experiments.metric_report(group, "revenue")
    assert summed["by_promotion"]["b-items"]["value"] == price(promo_items[0])
    total = sum(price(i) for i in (first["itemList"][0]["itemId"], promo_items[0],
                                   regular_items[0], tested["itemList"][0]["itemId"]))  # fmt: skip
    assert summed["by_source"]["rules"]["value"] == pytest.approx(total)

    metrics.delete(group, "buys")
    with pytest.raises(NotFound, match="metric attribution 'buys'"):
        campaigns.experiments.metric_report(group, "buys")
