"""``tastebud demo --scenario marketing --no-serve``: the segment finds the planted customers,
the emails reach a real SMTP server, engagement goes through the real API, and the stored
report counts exactly the simulated readers (machines apart); nothing is left running."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.engine import Engine
from tastebud.messaging.demo import GROUP, MESSAGE, TOP_USERS
from tastebud.messaging.inbox import free_port
from tastebud.settings import Settings


def numbers(pattern: str, text: str) -> list[int]:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in the output:\n{text}"
    return [int(n) for n in found.groups()]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_marketing_demo_sends_tracks_and_reports(tmp_path: Path) -> None:
    port = free_port()
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "demo", "--scenario", "marketing",
                                      "--no-serve", "--port", str(port)])  # fmt: skip
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert f"the API on http://127.0.0.1:{port}" in output  # --port reaches the scenario
    share, base = numbers(r"(\d+)% of them live near MAN and favour North America "
                          r"\(the planted taste\), against (\d+)%", output)  # fmt: skip
    assert share >= 60 and share >= 5 * base
    [received] = numbers(r"the SMTP server received (\d+) emails", output)
    readers, reader_opens, clickers, machine_opens, machine_clicks = numbers(
        r"(\d+) readers opened (\d+) times and (\d+) clicked; machines loaded the pixel (\d+) "
        r"times and followed (\d+) links", output,
    )  # fmt: skip
    unsubscribed = re.search(r"(c\d{4}) unsubscribed", output)
    assert unsubscribed is not None
    assert "campaign boston-spring" in output and "treatment price" in output

    with Engine(Settings(home=tmp_path)) as eng:
        report = eng.messaging.report(GROUP, MESSAGE)
        recipients = eng.messaging.get(GROUP, MESSAGE).body["users"]
        opted_out = {user for user in recipients
                     if eng.store.opted_out(GROUP, user, ["_email.unsubscribe"])}  # fmt: skip
    total = report["total"]
    assert received == total["sends"] == total["deliveries"] == TOP_USERS
    # Unique opens are the readers only: the scanners', proxy's and prefetches' loads count
    # in the total alone.
    assert machine_opens > 0
    assert total["opens"] == {"unique": readers, "total": reader_opens + machine_opens}
    assert total["clicks"] == {"unique": clickers, "total": clickers + machine_clicks}
    assert 0 < readers < received
    # one POST unsubscribed; the scanners' GETs of the same links did not
    assert total["unsubscribes"] == 1 and opted_out == {unsubscribed.group(1)}
    treatments = report["treatments"]
    assert treatments["price"]["rates"]["open"] > treatments["default"]["rates"]["open"]

    # and the portal's reel for two members of different tastes (tests/reels/test_demo.py)
    assert "the two edit lists differ" in output
    assert all((tmp_path / "reels-demo" / f"{fan}.json").exists()
               for fan in ("action-fan", "comedy-fan"))  # fmt: skip

    [smtp_port] = numbers(r"local SMTP server \(aiosmtpd\) on 127\.0\.0\.1:(\d+)", output)
    assert not listening(port) and not listening(smtp_port)
    assert not any(t.name == "tastebud-api" and t.is_alive() for t in threading.enumerate())
