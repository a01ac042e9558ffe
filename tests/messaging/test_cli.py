"""``tastebud messages …`` from the command line, over the test's store (SQLite and
PostgreSQL), sending to the test's SMTP server; and the SDK over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tastebud.api.app import create_app
from tastebud.cli import app
from tastebud.client import Client
from tastebud.engine import Engine
from tests.messaging.conftest import EMAIL_TEMPLATE
from tests.messaging.test_tracking import TestClient


def test_messages_from_the_command_line(
    marketing: Engine, store_url: str, group: str, tmp_path: Path, smtp: Any
) -> None:
    runner = CliRunner()
    env = {"TASTEBUD_MESSAGING__SMTP_PORT": str(smtp[0])}

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(marketing.settings.home), "--database-url",
                                     store_url, "--group", group, *args], env=env)  # fmt: skip
        return result.exit_code, result.stdout, result.stderr

    template = tmp_path / "offer.html.j2"
    template.write_text(EMAIL_TEMPLATE)
    other = tmp_path / "b.html.j2"
    other.write_text(EMAIL_TEMPLATE.replace("is waiting", "is cheaper"))
    segment = tmp_path / "segment.jsonl"
    segment.write_text('{"input": {"itemId": "i5"}, "output": {"usersList": ["u1", "u2", "u3"]}}\n'
                       '{"userId": "u4"}\n')  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"userId": "u1"}\n{oops\n')
    base = ("messages", "create", "route5", "--template", str(template), "--channel", "email",
            "--solution", "affinity", "--treatment", f"B={other}")  # fmt: skip

    code, _, err = run(*base, "--segment-file", str(bad))
    assert code == 1 and "bad.jsonl: line 2: not valid JSON" in err
    code, _, err = run(*base[:-2], "--segment-file", str(segment), "--channel", "fax")
    assert code != 0 and "fax" in err
    code, out, err = run(*base, "--segment-file", str(segment))
    assert code == 0, err
    assert "for 4 users" in out

    code, out, _ = run("messages", "preview", "route5", "--user", "u2", "--json")
    assert json.loads(out)["subject"] == "<b>User 2</b>, fly Route 5"
    assert run("messages", "send", "route5", "--dry-run", "--json")[0] == 0
    assert smtp[1].messages == []
    code, out, _ = run("messages", "send", "route5", "--json")
    assert code == 0 and json.loads(out)["counts"] == {"sent": 4}
    assert json.loads(run("messages", "send", "route5", "--json")[1])["counts"] == {"already": 4}
    assert len(smtp[1].messages) == 4
    assert "route5" in run("messages", "list")[1]
    assert json.loads(run("messages", "show", "route5")[1])["item_id"] == "i5"
    report = json.loads(run("messages", "report", "route5", "--json")[1])
    assert report["total"]["sends"] == 4 and set(report["treatments"]) <= {"default", "B"}
    code, out, _ = run("messages", "report", "route5")
    assert code == 0 and "campaign route5" in out
    code, _, err = run("messages", "preview", "nope")
    assert code == 1 and "message 'nope' does not exist" in err


def test_messages_through_the_sdk(marketing: Engine, group: str, smtp: Any) -> None:
    token = marketing.create_token(f"{group}-sdk", scope="admin")
    with TestClient(create_app(marketing.settings, engine=marketing)) as http:
        client = Client("http://testserver", token=token, group=group)
        client._http = http  # the in-process app, as the API tests drive it
        http.headers["Authorization"] = f"Bearer {token}"
        created = client.create_message("sdk", channel="email", item_id="i1",
                                        solution="affinity", top_users=3, html=True,
                                        templates={"default": EMAIL_TEMPLATE})  # fmt: skip
        assert created["users"] == 3 and created["treatments"] == ["default"]
        assert client.preview_message("sdk")["problems"] == []
        assert client.send_message("sdk", dry_run=True)["counts"] == {"would_send": 3}
        assert client.send_message("sdk")["counts"] == {"sent": 3}
        assert client.message_report("sdk")["total"]["sends"] == 3
        assert [m["name"] for m in client.list_messages()] == ["sdk"]
        assert client.get_message("sdk")["itemId"] == "i1"
    assert len(smtp[1].messages) == 3
