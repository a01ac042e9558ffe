"""Messages end to end on SQLite and PostgreSQL: a segment from an item-affinity solution,
drafts from a sandboxed template, mail sent to a real SMTP server and parsed back, re-runs
that send nothing twice, SMS and push through a real HTTP receiver."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tastebud.engine import Engine
from tastebud.errors import AlreadyExists, InvalidInput
from tastebud.messaging.channels import TRACKING_HEADER
from tastebud.messaging.tokens import TokenSigner, load_secret
from tests.messaging.conftest import EMAIL_TEMPLATE
from tests.messaging.servers import Receiver


def create_email(engine: Engine, group: str, name: str = "spring", **extra: Any) -> None:
    body = {"channel": "email", "item_id": "i0", "solution": "affinity", "top_users": 5,
            "templates": {"default": EMAIL_TEMPLATE}, "html": True} | extra  # fmt: skip
    engine.messaging.create(group, name, body)


def test_email_to_the_segment_over_smtp(marketing: Engine, group: str, smtp: Any) -> None:
    create_email(marketing, group)
    users = marketing.messaging.get(group, "spring").body["users"]
    assert len(users) == 5 and all(int(u[1:]) < 30 for u in users)  # cluster A wants i0

    result = marketing.messaging.send(group, "spring")

    assert result.counts == {"sent": 5}
    inbox = smtp[1]
    assert sorted(r[0] for r in inbox.recipients) == sorted(f"{u}@example.com" for u in users)
    mail = inbox.messages[0]
    user = mail["To"].split("@")[0]
    assert mail["Subject"] == f"<b>User {user[1:]}</b>, fly Route 0"  # a header: not escaped
    html = mail.get_body(("html",)).get_content()
    assert f"Hello &lt;b&gt;User {user[1:]}&lt;/b&gt;" in html  # autoescaped in HTML
    assert "Route 0 is waiting" in html and "/v1/track/open/" in html  # the pixel
    assert html.count("/v1/track/click/") == 3  # three recommendations, tracked
    assert "Unsubscribe" in mail.get_body(("plain",)).get_content()
    token = TokenSigner(load_secret(None, marketing.settings.home)).read(mail[TRACKING_HEADER])
    assert (token.user_id, token.campaign, token.activity) == (user, "spring", "email")
    assert mail["Message-ID"] == f"<{token.message_id}@tastebud>"
    assert mail["X-Tastebud-campaignId"] == "spring"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    report = marketing.messaging.report(group, "spring")
    assert report["total"]["sends"] == 5
    assert report["deliveries"]["status"] == {"sent": 5}


def test_a_rerun_never_sends_twice(marketing: Engine, group: str, smtp: Any) -> None:
    create_email(marketing, group)
    marketing.messaging.send(group, "spring")
    again = marketing.messaging.send(group, "spring")
    assert again.counts == {"already": 5}
    assert len(smtp[1].messages) == 5
    assert marketing.messaging.report(group, "spring")["total"]["sends"] == 5


def test_preview_and_dry_run_send_nothing(marketing: Engine, group: str, smtp: Any) -> None:
    create_email(marketing, group)
    preview = marketing.messaging.preview(group, "spring", user_id="u3")
    assert preview["subject"] == "<b>User 3</b>, fly Route 0" and preview["problems"] == []
    dry = marketing.messaging.send(group, "spring", dry_run=True)
    assert dry.counts == {"would_send": 5} and len(dry.drafts) == 5
    assert smtp[1].messages == []
    assert marketing.store.list_deliveries(group, "spring") == []


def test_treatments_split_the_audience(marketing: Engine, group: str, smtp: Any) -> None:
    other = EMAIL_TEMPLATE.replace("is waiting", "misses you")
    create_email(marketing, group, top_users=20, templates={"default": EMAIL_TEMPLATE, "B": other})
    marketing.messaging.send(group, "spring")
    bodies = [m.get_body(("html",)).get_content() for m in smtp[1].messages]
    b_count = sum("misses you" in body for body in bodies)
    assert 0 < b_count < 20
    treatments = marketing.messaging.report(group, "spring")["treatments"]
    assert treatments["B"]["sends"] == b_count and treatments["default"]["sends"] == 20 - b_count


def test_bad_input_is_named(marketing: Engine, group: str) -> None:
    def refused(match: str, **body: Any) -> None:
        with pytest.raises(InvalidInput, match=match):
            create_email(marketing, group, "bad", **body)

    refused("unknown placeholder 'usr'", templates={"default": "Subject: x\n{{ usr.NAME }}"})
    refused("line 2: ", templates={"default": "Subject: x\n{% for %}"})
    refused("channel: expected one of email, sms, webhook, got 'fax'", channel="fax")
    refused("provider: llm is off", provider="llm")
    refused("top_users: expected", top_users=0)
    with pytest.raises(InvalidInput, match="has no attribute 'NOPE'"):
        create_email(marketing, group, "late", templates={"default": "{{ user.NOPE }}"})
        marketing.messaging.preview(group, "late")
    create_email(marketing, group, "taken")
    with pytest.raises(AlreadyExists):
        create_email(marketing, group, "taken")
    assert [m.name for m in marketing.messaging.list(group)] == ["late", "taken"]
    # at send time, the same problem fails that user's message only, and says why
    assert marketing.messaging.send(group, "late").counts == {"failed": 5}
    detail = marketing.store.list_deliveries(group, "late")[0].detail
    assert detail is not None and "'NOPE'" in detail["problems"][0]


def test_a_draft_that_fails_its_checks_is_not_sent(
    marketing: Engine, group: str, smtp: Any
) -> None:
    create_email(marketing, group, templates={"default": "Subject: Hi\nFREE flights!"},
                 banned_words=["free"])  # fmt: skip
    problems = marketing.messaging.preview(group, "spring")["problems"]
    assert problems == ["banned word 'free'", "email: no unsubscribe link ({{ unsubscribe_url }})"]
    assert marketing.messaging.send(group, "spring").counts == {"failed": 5}
    assert smtp[1].messages == []


def test_sms_over_the_webhook_retries_transient_errors(
    marketing: Engine, group: str, webhook: Receiver
) -> None:
    webhook.statuses = [503, 200, 200, 200, 429]
    marketing.messaging.create(
        group,
        "sms",
        {
            "channel": "sms",
            "users": ["u1", "u2", "u3", "u4"],
            "templates": {"default": "Hi {{ user.PHONE }}, fares are down. Reply STOP to opt out"},
        },
    )
    started = time.monotonic()
    result = marketing.messaging.send(group, "sms")
    elapsed = time.monotonic() - started
    assert result.counts == {"sent": 4}
    assert len(webhook.received) == 6  # two transient refusals, each tried again
    assert elapsed >= 5 / 20  # six calls paced at 20 per second
    first = webhook.received[1]
    assert first["channel"] == "sms" and first["to"] == "+44700000001"
    assert first["attributes"]["campaignId"] == "sms" and first["tracking"]
    assert first["body"] == "Hi +44700000001, fares are down. Reply STOP to opt out"
    deliveries = marketing.store.list_deliveries(group, "sms")
    assert sorted(d.attempts for d in deliveries) == [1, 1, 2, 2]


def test_sms_too_long_fails_its_length_check(marketing: Engine, group: str) -> None:
    marketing.messaging.create(
        group, "long", {"channel": "sms", "users": ["u1"], "templates": {"default": "€" * 81}}
    )
    problems = marketing.messaging.preview(group, "long")["problems"]
    assert problems == ["length: 162 GSM-7 characters make 2 SMS parts; at most 1 allowed "
                        "(160 characters per part)"]  # fmt: skip


def test_push_payload_carries_the_attribution(
    marketing: Engine, group: str, webhook: Receiver
) -> None:
    marketing.messaging.create(
        group,
        "push",
        {"channel": "webhook", "users": ["u7"], "templates": {"default": "Subject: New\nHi!"}},
    )
    assert marketing.messaging.send(group, "push").counts == {"sent": 1}
    payload = webhook.received[0]
    assert payload["channel"] == "push" and payload["to"] == "u7" and payload["title"] == "New"
    campaign = payload["data"]["pinpoint"]["campaign"]
    assert campaign == {"campaign_id": "push", "campaign_activity_id": "webhook",
                        "treatment_id": "default"}  # fmt: skip
    assert payload["messageId"].startswith("msg-")
