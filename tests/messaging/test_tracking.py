"""Engagement over HTTP on SQLite and PostgreSQL: the pixel, the click redirect, unsubscribe by
POST only, tampered tokens refused, app events (Android flat keys, iOS nested payloads)
attributed to the same campaign, replays that change no count, and an open that feeds the
next recommendation."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tastebud.api.app import create_app
from tastebud.engine import Engine
from tests.messaging.conftest import EMAIL_TEMPLATE

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from fastapi.testclient import TestClient  # noqa: E402

HUMAN = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"}


@pytest.fixture
def http(marketing: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(marketing.settings, engine=marketing)) as client:
        yield client


@pytest.fixture
def admin(marketing: Engine, group: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {marketing.create_token(f'{group}-admin', scope='admin')}"}


def sent_links(smtp: Any) -> dict[str, list[str]]:
    """Each recipient's tracking paths: pixel, clicks and unsubscribe, from the real mail."""
    links = {}
    for mail in smtp[1].messages:
        html = mail.get_body(("html",)).get_content()
        paths = re.findall(r'http://127\.0\.0\.1:8765(/v1/track/[^"]+)', html)
        links[mail["To"].split("@")[0]] = paths
    return links


def send_over_http(http: TestClient, admin: dict[str, str], group: str) -> None:
    url = f"/v1/dataset-groups/{group}/messages"
    created = http.post(
        url,
        headers=admin,
        json={
            "name": "spring",
            "channel": "email",
            "itemId": "i0",
            "solution": "affinity",
            "topUsers": 4,
            "templates": {"default": EMAIL_TEMPLATE},
            "html": True,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["users"] == 4
    assert http.post(f"{url}/spring/send", headers=admin, json={}).json()["counts"] == {"sent": 4}


def test_opens_clicks_and_unsubscribe(
    http: TestClient, admin: dict[str, str], group: str, smtp: Any
) -> None:
    send_over_http(http, admin, group)
    links = sent_links(smtp)
    users = sorted(links)
    pixel = {u: next(p for p in links[u] if "/open/" in p) for u in users}
    # u_a opens three times (one human, counted once as unique), u_b only through a scanner
    # and a prefetching proxy; the others never open.
    for _ in range(3):
        assert http.get(pixel[users[0]], headers=HUMAN).headers["content-type"] == "image/gif"
    http.get(pixel[users[1]], headers={"User-Agent": "Barracuda Sentinel (EE)"})
    http.get(pixel[users[1]], headers={"User-Agent": "Mozilla/5.0"})  # Apple's proxy
    http.get(pixel[users[1]], headers=HUMAN | {"Sec-Purpose": "prefetch"})
    click = next(p for p in links[users[0]] if "/click/" in p)
    answer = http.get(click, headers=HUMAN, follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("https://example.com/i")

    unsubscribe = next(p for p in links[users[2]] if "/unsubscribe/" in p)
    assert '<form method="post"' in http.get(unsubscribe).text  # a GET changes nothing
    report = http.get(f"/v1/dataset-groups/{group}/messages/spring/report", headers=admin).json()
    assert report["total"]["unsubscribes"] == 0
    assert http.post(unsubscribe).status_code == 200
    assert http.post(unsubscribe).status_code == 200  # once is enough

    report = http.get(f"/v1/dataset-groups/{group}/messages/spring/report", headers=admin).json()
    total = report["total"]
    assert total["sends"] == 4
    assert total["opens"] == {"unique": 1, "total": 6}
    assert total["clicks"] == {"unique": 1, "total": 1}
    assert total["unsubscribes"] == 1
    assert total["rates"] == {"delivery": 0.0, "open": 0.25, "click": 0.25}
    assert report["activities"]["email"]["sends"] == 4


def test_an_unsubscribed_user_gets_no_more_mail(
    http: TestClient, admin: dict[str, str], group: str, smtp: Any, marketing: Engine
) -> None:
    send_over_http(http, admin, group)
    user, paths = next(iter(sent_links(smtp).items()))
    http.post(next(p for p in paths if "/unsubscribe/" in p))
    marketing.messaging.create(
        group,
        "again",
        {
            "channel": "email",
            "users": [user],
            "item_id": "i2",
            "templates": {"default": EMAIL_TEMPLATE},
        },
    )
    assert marketing.messaging.send(group, "again").counts == {"skipped": 1}


def test_tampered_tokens_are_refused(
    http: TestClient, admin: dict[str, str], group: str, smtp: Any, marketing: Engine
) -> None:
    send_over_http(http, admin, group)
    paths = next(iter(sent_links(smtp).values()))
    for path in paths:
        prefix, token = path.rsplit("/", 1)
        forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        method = http.post if "/unsubscribe/" in path else http.get
        assert method(f"{prefix}/{forged}").status_code == 404
    assert http.get("/v1/track/open/not-a-token.gif").status_code == 404
    assert http.post("/v1/track/unsubscribe/%00%ff").status_code == 404
    total = marketing.messaging.report(group, "spring")["total"]
    assert total["opens"]["total"] == 0 and total["unsubscribes"] == 0
    # everything else needs a token
    assert http.get(f"/v1/dataset-groups/{group}/messages").status_code == 401


def test_an_open_within_two_seconds_is_a_machine(marketing: Engine, group: str, smtp: Any) -> None:
    marketing.messaging.settings = marketing.messaging.settings.model_copy(
        update={"machine_open_seconds": 2.0}
    )
    marketing.messaging.create(
        group,
        "fast",
        {
            "channel": "email",
            "users": ["u1"],
            "item_id": "i1",
            "html": True,
            "templates": {"default": EMAIL_TEMPLATE},
        },
    )
    marketing.messaging.send(group, "fast")
    token = re.search(
        r'/v1/track/open/([^"]+)\.gif"', smtp[1].messages[0].get_body(("html",)).get_content()
    )
    assert token is not None
    marketing.messaging.track(token.group(1), "open", {k.lower(): v for k, v in HUMAN.items()})
    assert marketing.messaging.report(group, "fast")["total"]["opens"] == {"unique": 0, "total": 1}


def app_event(user: str, event_id: str, event_type: str, properties: dict[str, Any]) -> dict:
    event = {"eventId": event_id, "itemId": "i0", "eventType": event_type,
             "sentAt": 1_700_000_000, "properties": properties}  # fmt: skip
    return {"userId": user, "eventList": [event]}


def test_app_events_attribute_flat_and_nested_alike(
    http: TestClient, admin: dict[str, str], group: str
) -> None:
    url = f"/v1/dataset-groups/{group}/events"
    android = {"campaign_id": "c9", "campaign_activity_id": "a1", "treatment_id": "0"}
    ios = {"data": {"pinpoint": {"campaign": android}}}
    batch = [
        app_event(
            "u1",
            "s1",
            "_campaign.send",
            {
                "pinpoint.campaign.campaign_id": "c9",
                "pinpoint.campaign.campaign_activity_id": "a1",
                "pinpoint.campaign.treatment_id": "0",
            },
        ),
        app_event("u1", "r1", "_campaign.received_foreground", android),
        app_event("u1", "o1", "_campaign.opened_notification", ios),
        app_event(
            "u2",
            "s2",
            "_campaign.send",
            {"campaignId": "c9", "activityId": "a1", "treatmentId": "0"},
        ),
        app_event("u2", "o2", "_campaign.opened_notification", ios),
        app_event("u3", "o3", "_campaign.opened_notification", android),  # never sent
        app_event("u4", "j1", "_journey.send", {"journey_id": "j7", "journey_activity_id": "x"}),
    ]
    for replay in range(2):  # replaying the whole batch changes no count
        for body in batch:
            answer = http.post(url, headers=admin, json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["duplicates"] == replay
        report = http.get(f"/v1/dataset-groups/{group}/messages/c9/report", headers=admin).json()
        total = report["total"]
        assert total["sends"] == 2 and total["deliveries"] == 1
        assert total["opens"] == {"unique": 3, "total": 3}
        assert total["rates"]["open"] == 1.0  # u3's open was never sent: not in the rate
        assert list(report["activities"]) == ["a1"] and list(report["treatments"]) == ["0"]
    journey = http.get(f"/v1/dataset-groups/{group}/messages/j7/report", headers=admin).json()
    assert journey["total"]["sends"] == 1
    assert http.get(f"/v1/dataset-groups/{group}/messages/nope/report",
                    headers=admin).status_code == 404  # fmt: skip


def test_an_open_feeds_the_next_recommendation(
    http: TestClient, admin: dict[str, str], group: str, smtp: Any, marketing: Engine
) -> None:
    marketing.create_solution(
        group,
        "for-you",
        {
            "recipe": "user-personalization",
            "params": {"algorithm": "ease"},
            "data": {"event_weights": {"click": 1.0, "_email.open": 1.0}},
        },
    )
    marketing.train(group, "for-you")
    newcomer = "n1"  # no history: the cold answer (popularity) mixes both clusters
    marketing.messaging.create(
        group,
        "route-30",
        {
            "channel": "email",
            "users": [newcomer],
            "item_id": "i30",
            "html": True,
            "templates": {"default": EMAIL_TEMPLATE},
            "address_field": "NAME",
        },
    )
    from tastebud.ingest import UserIn

    marketing.put_users(group, [UserIn(user_id=newcomer, properties={"NAME": "n1@example.com"})])
    marketing.messaging.send(group, "route-30")
    before = marketing.recommender.recommend(group, {"solution": "for-you"}, user_id=newcomer, k=5)
    pixel = next(p for p in sent_links(smtp)["n1"] if "/open/" in p)
    http.get(pixel, headers=HUMAN)
    after = marketing.recommender.recommend(group, {"solution": "for-you"}, user_id=newcomer, k=5)
    assert [e.event_type for e in marketing.recent_events(group, newcomer)] == ["_email.open"]
    assert all(int(r.id[1:]) >= 20 for r in after.results)  # route 30's cluster (B)
    assert [r.id for r in after.results] != [r.id for r in before.results]
    assert "i30" not in [r.id for r in after.results]  # opened: seen
