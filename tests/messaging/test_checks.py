"""Draft checks: SMS length in GSM-7 or UCS-2 parts, banned words, unsubscribe, leftovers."""

from __future__ import annotations

from tastebud.messaging.checks import check_draft, sms_parts
from tastebud.messaging.content import Draft


def test_sms_parts_count_gsm7_and_ucs2() -> None:
    assert sms_parts("a" * 160) == ("GSM-7", 160, 1)
    assert sms_parts("a" * 161) == ("GSM-7", 161, 2)  # 153 per part once concatenated
    assert sms_parts("a" * 307) == ("GSM-7", 307, 3)
    assert sms_parts("[" * 80) == ("GSM-7", 160, 1)  # extension characters take two
    assert sms_parts("é" * 160) == ("GSM-7", 160, 1)  # é is in the GSM set
    assert sms_parts("ł" * 70) == ("UCS-2", 70, 1)
    assert sms_parts("ł" * 71) == ("UCS-2", 71, 2)
    assert sms_parts("🙂" * 35) == ("UCS-2", 70, 1)  # a surrogate pair is two units


def test_checks_name_each_problem() -> None:
    def problems(body: str, channel: str = "email", subject: str = "Hi") -> list[str]:
        return check_draft(Draft(subject, body), channel=channel, banned_words=["cheap"],
                           unsubscribe_url="https://u", max_sms_parts=1)  # fmt: skip

    assert problems("See https://u") == []
    assert problems("Cheap! https://u") == ["banned word 'cheap'"]
    assert problems("cheapest https://u") == []  # whole words only
    assert problems("Hi {first_name} https://u") == [
        "unknown placeholder '{first_name}' left in the draft"
    ]
    assert problems("Hi [FIRST_NAME] https://u")[0].startswith("unknown placeholder")
    assert problems("no link") == ["email: no unsubscribe link ({{ unsubscribe_url }})"]
    assert problems("https://u", subject="")[0].startswith("subject: missing")
    assert problems("x" * 161, channel="sms")[0].startswith("length: 161 GSM-7")
    assert problems("ok", channel="sms") == []
