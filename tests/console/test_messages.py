"""The Messages pages over a real engine (SQLite and PostgreSQL) sending to a real SMTP server:
the list, a preview, a dry run, a send, and the report's figures after a reader opens and
clicks through the mail's own tracking links — the same figures ``…/messages/{name}/report``
gives, shown as tables."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tastebud.api.app import create_app
from tastebud.store import Store
from tests.api.conftest import TestClient
from tests.console.conftest import HX, Console
from tests.messaging.conftest import EMAIL_TEMPLATE, load_marketing_data, make_engine
from tests.messaging.servers import smtp_server
from tests.messaging.test_tracking import HUMAN, sent_links

SUBJECT_B = EMAIL_TEMPLATE.replace("Subject: {{ user.NAME }}, fly", "Subject: Half price:")


@pytest.fixture
def mail(store: Store, store_url: str, group: str, tmp_path: Path) -> Iterator[tuple[Console, Any]]:
    """A console over an engine that mails the test's SMTP server, with the marketing data,
    an item-affinity solution and the message ``spring`` (two treatments, 12 users)."""
    with smtp_server() as smtp:
        engine = make_engine(store, store_url, group, tmp_path / "home", smtp_port=smtp[0])
        load_marketing_data(engine, group, tmp_path)
        engine.messaging.create(group, "spring", {
            "channel": "email", "item_id": "i0", "solution": "affinity", "top_users": 12,
            "templates": {"default": EMAIL_TEMPLATE, "B": SUBJECT_B}, "html": True,
        })  # fmt: skip
        admin = engine.create_token(f"{group}-admin", scope="admin")
        with TestClient(create_app(engine.settings, engine=engine)) as http:
            console = Console(http, engine, group, admin)
            console.sign_in(admin)
            yield console, smtp[1]
        engine.close()


def test_messages_list_preview_and_dry_run(mail: tuple[Console, Any]) -> None:
    console, smtp = mail
    listing = console.http.get(console.url("messages")).text
    assert re.search(r'<tr data-message="spring">.*?<td class="num">12</td>', listing, re.S)
    page = console.http.get(console.url("messages/spring")).text
    assert "not sent yet" in page and 'id="preview-button"' in page

    user = console.engine.messaging.get(console.group, "spring").body["users"][3]
    draft = console.engine.messaging.preview(console.group, "spring", user_id=user)
    shown = console.http.get(console.url(f"messages/spring/preview?user={user}"), headers=HX)
    assert shown.status_code == 200 and f'data-user="{user}"' in shown.text
    # the users' NAMEs are markup: escaped in the subject, the body in a sandboxed frame
    assert f'<strong class="subject">{html.escape(draft["subject"])}</strong>' in shown.text
    assert draft["treatment"] in shown.text and '<iframe class="mail" sandbox=""' in shown.text
    assert "passes every check" in shown.text

    dry = console.http.post(console.url("messages/spring/send"), data={"dry_run": "1"},
                            headers=HX)  # fmt: skip
    assert dry.status_code == 200 and "dry run: nothing sent" in dry.text
    assert dry.text.count('<tr><td class="mono">') == 12 and not smtp.messages
    unknown = console.http.get(console.url("messages/nope"))
    assert unknown.status_code == 404 and "nope" in unknown.text


def test_a_send_and_its_engagement_report(mail: tuple[Console, Any]) -> None:
    console, smtp = mail
    sent = console.http.post(console.url("messages/spring/send"), headers=HX)
    assert sent.status_code == 200 and "sent 12" in sent.text and len(smtp.messages) == 12
    again = console.http.post(console.url("messages/spring/send"), headers=HX)
    assert "already 12" in again.text and len(smtp.messages) == 12  # nothing sent twice
    links = sent_links((None, smtp))
    reader = sorted(links)[0]
    for _ in range(2):  # two loads of the pixel by one person: one unique open
        console.http.get(next(p for p in links[reader] if "/open/" in p), headers=HUMAN)
    console.http.get(next(p for p in links[reader] if "/click/" in p), headers=HUMAN,
                     follow_redirects=False)  # fmt: skip

    report = console.engine.messaging.report(console.group, "spring")
    assert report["total"]["opens"] == {"unique": 1, "total": 2}  # what the page must show
    page = console.http.get(console.url("messages/spring")).text
    total = re.search(r'<tr data-row="all">(.*?)</tr>', page, re.S)
    assert total is not None
    assert '<td class="num sends">12</td>' in total.group(1)
    assert re.search(r'class="num opens">1 <span class="muted">8\.3%', total.group(1))
    assert re.search(r'class="num clicks">1 <span class="muted">8\.3%', total.group(1))
    for treatment, row in report["treatments"].items():
        assert f'<tr data-row="{treatment}"><td>{treatment}</td><td class="num sends">' \
               f'{row["sends"]}</td>' in page  # fmt: skip
    (comparison,) = report["comparison"]
    p_value = comparison["open"]["p_value"]
    shown = re.search(r'<tr data-treatment="B">.*?class="num open-p">([^<]+)<', page, re.S)
    assert shown is not None and shown.group(1) == f"{p_value:.3f}"
    assert re.search(r'badge sent">sent</span></td><td class="num">12<', page)
