"""The language-model provider against a real local server speaking the chat-completions
shape: structured output at temperature 0, a cache by input hash, and a draft that fails its
checks retried once, then replaced by the template version (the report says so)."""

from __future__ import annotations

from typing import Any

from tastebud.engine import Engine
from tests.messaging.conftest import make_engine
from tests.messaging.servers import chat_answer, http_receiver

TEMPLATE = "Subject: {{ item.NAME }}\nHello {{ user.NAME }}. {{ unsubscribe_url }}"


def test_llm_drafts_are_checked_cached_and_replaced_when_bad(
    marketing: Engine, store: Any, store_url: str, group: str, tmp_path: Any, smtp: Any
) -> None:
    def respond(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        facts = request["messages"][1]["content"]
        if '"id": "u1"' in facts:  # a good draft, using the one placeholder allowed
            return 200, chat_answer("Your next trip", "Dear traveller. {{ unsubscribe_url }}")
        return 200, chat_answer("FREE", "Win a {{ prize }}!")  # banned, unknown placeholder

    with http_receiver(respond) as llm:
        engine = make_engine(store, store_url, group, tmp_path / "home", smtp_port=smtp[0],
                             llm_url=llm.url, banned_words=["free"])  # fmt: skip
        engine.messaging.create(
            group,
            "ai",
            {
                "channel": "email",
                "provider": "llm",
                "users": ["u1", "u2"],
                "item_id": "i3",
                "templates": {"default": TEMPLATE},
            },
        )
        first = engine.messaging.preview(group, "ai", user_id="u1")
        again = engine.messaging.preview(group, "ai", user_id="u1")
        calls_for_u1 = len(llm.received)
        result = engine.messaging.send(group, "ai")
        report = engine.messaging.report(group, "ai")
        engine.tracker.close()

    assert first["provider"] == "llm" and first["subject"] == "Your next trip"
    assert first["body"].startswith("Dear traveller. http://127.0.0.1:8765/v1/track/unsub")
    assert again["subject"] == first["subject"] and calls_for_u1 == 1  # answered from the cache
    request = llm.received[0]
    assert request["temperature"] == 0
    assert request["response_format"]["json_schema"]["schema"]["required"] == ["subject", "body"]
    assert "u1@example.com" not in request["messages"][1]["content"]  # no address to the model
    assert result.counts == {"sent": 2}
    assert len(llm.received) == 3  # u2: the draft and one retry, then the template
    assert "FREE" not in {m["Subject"] for m in smtp[1].messages}
    assert "Route 3" in {m["Subject"] for m in smtp[1].messages}
    replaced = report["deliveries"]
    assert replaced["llm_drafts_replaced"] == 1 and replaced["replaced"][0]["user"] == "u2"
    assert "unknown placeholder" in " ".join(replaced["replaced"][0]["reasons"])
