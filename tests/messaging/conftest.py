"""Messaging fixtures: the planted two-cluster group with user profiles (names, email
addresses, phone numbers) and item names, an item-affinity solution trained on it, and an
engine whose messaging settings point at real local receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tastebud.engine import Engine
from tastebud.ingest import ItemIn, UserIn
from tastebud.settings import MessagingSettings, Settings
from tastebud.store import Store
from tests.messaging.servers import Receiver, http_receiver, smtp_server
from tests.serving.conftest import write_clustered


@pytest.fixture
def smtp() -> Iterator[tuple[int, object]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with http_receiver() as receiver:
        yield receiver


def make_engine(
    store: Store, store_url: str, group: str, home: Path, **messaging: object
) -> Engine:
    options: dict[str, object] = {
        "rate_per_second": {"email": 1000.0, "sms": 1000.0, "webhook": 1000.0},
        "retry_backoff_seconds": 0.0,
        "machine_open_seconds": 0.0,
    }
    settings = Settings(home=home, default_group=group, database_url=store_url,
                        messaging=MessagingSettings(**(options | messaging)))  # fmt: skip
    return Engine(settings, store=store)


def load_marketing_data(engine: Engine, group: str, folder: Path) -> None:
    """Users u0..u59 (u0-u29 like items i0-i19) with NAME, EMAIL, PHONE; items with NAME."""
    interactions, _ = write_clustered(folder)
    engine.put_schema(group, "items", {"GENRES": "categorical", "NAME": "string"})
    engine.put_schema(group, "users", {"NAME": "string", "EMAIL": "string", "PHONE": "string"})
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.put_items(
        group,
        [
            ItemIn(
                item_id=f"i{i}", properties={"GENRES": "a" if i < 20 else "b", "NAME": f"Route {i}"}
            )
            for i in range(40)
        ],
    )
    engine.put_users(group, [UserIn(user_id=f"u{u}", properties={
        "NAME": f"<b>User {u}</b>", "EMAIL": f"u{u}@example.com", "PHONE": f"+4470000{u:04d}"})
        for u in range(60)])  # fmt: skip
    engine.create_solution(
        group, "affinity", {"recipe": "item-affinity", "params": {"algorithm": "ease"}}
    )
    engine.train(group, "affinity")


@pytest.fixture
def marketing(
    store: Store, store_url: str, group: str, tmp_path: Path, smtp: tuple[int, object],
    webhook: Receiver,
) -> Iterator[Engine]:  # fmt: skip
    """An engine over the loaded group, sending to the test's SMTP server and webhook."""
    engine = make_engine(store, store_url, group, tmp_path / "home",
                         smtp_port=smtp[0], webhook_url=webhook.url,
                         rate_per_second={"email": 1e3, "sms": 20.0, "webhook": 1e3})  # fmt: skip
    load_marketing_data(engine, group, tmp_path)
    yield engine
    engine.close()


EMAIL_TEMPLATE = """Subject: {{ user.NAME }}, fly {{ item.NAME }}
<p>Hello {{ user.NAME }}, {{ item.NAME }} is waiting.</p>
<ul>{% for r in recommendations %}
<li><a href="{{ track('https://example.com/' ~ r.id) }}">{{ r.NAME }}</a></li>
{% endfor %}</ul>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""
