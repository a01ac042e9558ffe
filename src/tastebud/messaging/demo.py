"""``tastebud demo --scenario marketing``: a travel marketer's email campaign, end to end.

Customers, routes and their searches and bookings (``demo/travel.py``, tastes planted) go into
the ``marketing`` group; an ``item-affinity`` solution finds the customers most likely to want
one route; a message with two subject lines (A/B) is sent to them through a real SMTP server
started here. Then the world answers over HTTP, as it would in production: the mail server's
delivery receipts through PutEvents, and link scanners, a privacy proxy and simulated readers
loading the pixel and following the links of the mail they got. The report counts the
readers, machines apart.
"""

from __future__ import annotations

import html
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from tastebud.api.app import create_app
from tastebud.cli._common import console, fail_cleanly
from tastebud.cli.demo import demo_token, load_files, serve_until_interrupted, train_solutions
from tastebud.cli.messages import print_report
from tastebud.cli.serve import start_server, stop_server
from tastebud.client import Client
from tastebud.demo import travel
from tastebud.engine import Engine
from tastebud.messaging.inbox import Inbox, smtp_inbox
from tastebud.reels import demo as reels_demo
from tastebud.settings import Settings

GROUP = "marketing"
ROUTE = "MAN-BOS"  # the route on sale: Manchester to Boston
MESSAGE = "boston-spring"
SOLUTION = "affinity"
TOP_USERS = 200
SCHEMAS = {
    "items": {"NAME": "string", "ORIGIN": "categorical", "DESTINATION": "categorical",
              "REGION": "categorical", "PRICE": "numerical"},
    "users": {"NAME": "string", "EMAIL": "string", "HOME_AIRPORT": "categorical"},
    "interactions": {},
}  # fmt: skip
# A booking says more than a search; the engagement events that follow are not tastes.
SOLUTIONS = {SOLUTION: {"recipe": "item-affinity", "params": {"algorithm": "ease"},
                        "data": {"event_weights": {"book": 1.0, "search": 0.3}}}}  # fmt: skip
_BODY = """<p>Hello {{ user.NAME }},</p>
<p>Spring seats on <a href="{{ track('https://fly.example.com/routes/' ~ item.id) }}">{{
item.NAME }}</a>, from £{{ item.PRICE | int }}.</p>
{% if recommendations %}<p>You may also like:</p>
<ul>{% for r in recommendations %}
<li><a href="{{ track('https://fly.example.com/routes/' ~ r.id) }}">{{ r.NAME }}</a></li>
{% endfor %}</ul>{% endif %}
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""
# Treatment -> (file, subject line): the A/B test is the subject line.
TEMPLATES = {
    "default": ("offer.html.j2", "Subject: {{ user.NAME }}, {{ item.NAME }} this spring"),
    "price": ("offer-price.html.j2", "Subject: {{ item.NAME }} from £{{ item.PRICE | int }}"),
}
# The planted behaviour of the recipients.
OPEN_RATE = {"default": 0.25, "price": 0.45}  # the price in the subject gets more readers
CLICK_RATE = 0.4  # of readers
SCANNED, APPLE_MAIL, PREFETCHED = 0.25, 0.2, 0.05  # mailboxes behind each kind of machine
BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/128.0"}
SCANNER = {"User-Agent": "Barracuda Sentinel (EE)"}  # follows every link as mail arrives
APPLE_PROXY = {"User-Agent": "Mozilla/5.0"}  # Mail Privacy Protection loads every pixel
PREFETCH = BROWSER | {"Sec-Purpose": "prefetch"}


@dataclass(frozen=True)
class Mail:
    """What one recipient got, read from the mail the SMTP server received."""

    user: str
    treatment: str
    attribution: dict[str, str]  # messageId, campaignId, activityId, treatmentId
    pixel: str
    clicks: list[str]  # the route's link first
    unsubscribe: str


@dataclass
class Planted:
    """What the simulation did, to compare with the report."""

    readers: int = 0
    reader_opens: int = 0
    clickers: int = 0
    machine_opens: int = 0
    machine_clicks: int = 0
    unsubscribed: str | None = None


def run(settings: Settings, *, seed: int, serve: bool) -> None:
    """Generate, import, train, segment, send, simulate engagement, report, then compose a
    reel for two users of different tastes (``reels/demo.py``); with ``serve``, keep the API
    (and the SMTP server) up until Ctrl+C. Both are stopped on return."""
    console.rule("[bold]tastebud demo: a travel marketer's email campaign")
    folder = settings.home / "marketing-data"
    data = travel.generate(seed=seed)
    files = data.write_csv(folder)
    console.print(f"generated {data.customers.height:,} customers, {data.routes.height} routes, "
                  f"{data.interactions.height:,} searches and bookings -> {folder}")  # fmt: skip
    with fail_cleanly(), smtp_inbox() as inbox, _api(settings, inbox) as (eng, url, alive):
        token = demo_token(eng, "marketing-demo")
        if any(group.name == GROUP for group in eng.list_groups()):
            # Start over: an earlier run's sends, opens and unsubscribes would mix into this
            # run's report, and its message name is taken.
            console.print(f"replacing the group {GROUP!r} of an earlier run")
            eng.delete_group(GROUP)
        load_files(eng, GROUP, SCHEMAS, files)
        train_solutions(eng, GROUP, SOLUTIONS)
        _create_message(eng, data, folder)
        sent_until = _send(eng, inbox)
        customers = data.customers
        mails = _read_mails(inbox, dict(zip(customers["EMAIL"], customers["USER_ID"], strict=True)))
        with Client(url, token=token, group=GROUP) as client:
            _receipts(client, mails)
        planted = _engage(mails, random.Random(seed), sent_until,
                          eng.settings.messaging.machine_open_seconds)  # fmt: skip
        _report(eng.messaging.report(GROUP, MESSAGE), planted)
        # The portal's other half (issue 16): a trailer reel for two members of other tastes.
        reels_demo.run(settings, seed=seed, serve=False)
        if serve:
            report = f"{url}/v1/dataset-groups/{GROUP}/messages/{MESSAGE}/report"
            hint = (f"try: curl -H 'Authorization: Bearer {token}' {report}\n"
                    f"mail still goes to the SMTP server on 127.0.0.1:{inbox.port}")  # fmt: skip
            serve_until_interrupted(url, alive, hint, token=token, group=GROUP)


@contextmanager
def _api(settings: Settings, inbox: Inbox) -> Iterator[tuple[Engine, str, Callable[[], bool]]]:
    """An engine whose email goes to ``inbox`` and whose links reach its API, served here
    until the block ends (Ctrl+C included); yields the engine, the API's URL and whether the
    API still runs."""
    url = f"http://{settings.api.host}:{settings.api.port}"
    messaging = settings.messaging.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": inbox.port, "smtp_username": None,
        "smtp_starttls": False, "public_url": url,
        # a local server: no provider's rate limit to respect (20/s by default)
        "rate_per_second": settings.messaging.rate_per_second | {"email": 1000.0},
    })  # fmt: skip
    settings = settings.model_copy(update={"messaging": messaging})
    console.print(f"local SMTP server (aiosmtpd) on 127.0.0.1:{inbox.port}; the API on {url}")
    with Engine(settings) as eng:
        eng.init()
        server = start_server(create_app(settings, engine=eng), settings.api.host,
                              settings.api.port)  # fmt: skip
        try:
            yield eng, url, server.is_alive
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            stop_server(server)


def _create_message(eng: Engine, data: travel.TravelData, folder: Path) -> None:
    paths = {}
    for treatment, (name, subject) in TEMPLATES.items():
        paths[treatment] = folder / name
        paths[treatment].write_text(f"{subject}\n{_BODY}", encoding="utf-8")
    body = {"channel": "email", "html": True, "item_id": ROUTE, "solution": SOLUTION,
            "top_users": TOP_USERS,
            "templates": {t: p.read_text(encoding="utf-8") for t, p in paths.items()}}  # fmt: skip
    users = eng.messaging.create(GROUP, MESSAGE, body).body["users"]
    origin, region = data.routes.filter(ITEM_ID=ROUTE).select("ORIGIN", "REGION").row(0)
    everyone = data.customers["USER_ID"].to_list()
    console.print(
        f"segment: the {len(users)} customers most likely to want {ROUTE}; "
        f"{data.planted_share(users, ROUTE):.0%} of them live near {origin} and favour "
        f"{region} (the planted taste), against {data.planted_share(everyone, ROUTE):.0%} "
        "of all customers", highlight=False,
    )  # fmt: skip
    console.print(
        f"message {MESSAGE!r}, treatments default and price (A/B subject lines); the same as "
        f"`tastebud messages create {MESSAGE} --group {GROUP} --item {ROUTE} --solution "
        f"{SOLUTION} --top-users {TOP_USERS} --channel email --template {paths['default']} "
        f"--treatment price={paths['price']}`", highlight=False, markup=False, soft_wrap=True,
    )  # fmt: skip
    draft = eng.messaging.preview(GROUP, MESSAGE)
    checks = "; ".join(draft["problems"]) or "passed"
    console.print(f"preview for {draft['user']} (treatment {draft['treatment']}): "
                  f"{draft['subject']!r}; checks {checks}", highlight=False)  # fmt: skip


def _send(eng: Engine, inbox: Inbox) -> float:
    """Send the message; returns when sending ended (epoch seconds)."""
    result = eng.messaging.send(GROUP, MESSAGE)
    ended = time.time()
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    console.print(f"sent: {counts} in {result.seconds:.1f}s; the SMTP server received "
                  f"{len(inbox.messages)} emails. The first, as it parsed it:")  # fmt: skip
    first = inbox.messages[0]
    text = first.get_body(("plain",))
    lines = [ln for ln in (text.get_content() if text else "").splitlines() if ln.strip()]
    console.print(f"  To: {first['To']}\n  Subject: {first['Subject']}\n  "
                  + "\n  ".join(lines[:4]), highlight=False, markup=False)  # fmt: skip
    return ended


def _read_mails(inbox: Inbox, user_of: dict[str, str]) -> list[Mail]:
    mails = []
    for mail in inbox.messages:
        part = mail.get_body(("html",))
        assert isinstance(part, EmailMessage), "the demo's template is HTML"
        links = [html.unescape(u) for u in re.findall(r'"([^"]*/v1/track/[^"]+)"',
                                                      part.get_content())]  # fmt: skip
        keys = ("messageId", "campaignId", "activityId", "treatmentId")
        mails.append(Mail(
            user=user_of[str(mail["To"])], treatment=str(mail["X-Tastebud-treatmentId"]),
            attribution={k: str(mail[f"X-Tastebud-{k}"]) for k in keys},
            pixel=next(u for u in links if "/track/open/" in u),
            clicks=[u for u in links if "/track/click/" in u],
            unsubscribe=next(u for u in links if "/track/unsubscribe/" in u),
        ))  # fmt: skip
    return mails


def _receipts(client: Client, mails: list[Mail]) -> None:
    """The mail server's delivery receipts, as an email provider's webhook would send them:
    PutEvents ``_email.delivered``, attributed by the mail's own headers."""
    for mail in mails:
        event = {"itemId": ROUTE, "eventType": "_email.delivered",
                 "eventId": f"{mail.attribution['messageId']}:delivered",
                 "properties": mail.attribution}  # fmt: skip
        client.put_events([event], user_id=mail.user)
    console.print(f"delivery receipts: {len(mails)} `_email.delivered` events through PutEvents")


def _engage(mails: list[Mail], rng: random.Random, sent_until: float, window: float) -> Planted:
    """Machines first (as mail arrives), then readers once the machine window has passed,
    each loading what is in their own mail through the real API."""
    planted = Planted()
    with httpx.Client(timeout=10) as http:
        for mail in mails:
            _machines(http, mail, rng, planted)
        wait = sent_until + window - time.time()
        if wait > 0:  # opens sooner than this after sending count as machines'
            time.sleep(wait)
        for mail in mails:
            _reader(http, mail, rng, planted)
    console.print(
        f"engagement, through the tracking links: {planted.readers} readers opened "
        f"{planted.reader_opens} times and {planted.clickers} clicked; machines loaded the "
        f"pixel {planted.machine_opens} times and followed {planted.machine_clicks} links; "
        f"{planted.unsubscribed} unsubscribed", highlight=False,
    )  # fmt: skip
    return planted


def _machines(http: httpx.Client, mail: Mail, rng: random.Random, planted: Planted) -> None:
    draw = rng.random()
    if draw < SCANNED:  # every link, the unsubscribe page too: a GET unsubscribes no one
        for url in (mail.pixel, *mail.clicks, mail.unsubscribe):
            _fetch(http, "GET", url, SCANNER)
        planted.machine_opens += 1
        planted.machine_clicks += len(mail.clicks)
    elif draw < SCANNED + APPLE_MAIL + PREFETCHED:
        _fetch(http, "GET", mail.pixel, APPLE_PROXY if draw < SCANNED + APPLE_MAIL else PREFETCH)
        planted.machine_opens += 1


def _reader(http: httpx.Client, mail: Mail, rng: random.Random, planted: Planted) -> None:
    if rng.random() >= OPEN_RATE[mail.treatment]:
        return
    opens = rng.choice((1, 1, 1, 2, 3))  # some read it again
    for _ in range(opens):
        _fetch(http, "GET", mail.pixel, BROWSER)
    planted.readers += 1
    planted.reader_opens += opens
    if rng.random() < CLICK_RATE:
        _fetch(http, "GET", mail.clicks[0], BROWSER)
        planted.clickers += 1
    elif planted.unsubscribed is None:  # the first reader who does not click has had enough
        _fetch(http, "POST", mail.unsubscribe, BROWSER)
        planted.unsubscribed = mail.user


def _fetch(http: httpx.Client, method: str, url: str, headers: dict[str, str]) -> None:
    answer = http.request(method, url, headers=headers)
    if answer.status_code not in (200, 302):  # 302: a click's redirect, not followed
        raise RuntimeError(f"{method} {url}: HTTP {answer.status_code}")


def _report(report: dict[str, Any], planted: Planted) -> None:
    print_report(report)
    total = report["total"]
    opens, clicks = total["opens"], total["clicks"]
    console.print(
        f"what it shows: {total['deliveries']} of {total['sends']} emails delivered. "
        f"{opens['unique']} people opened one, though the pixel was loaded {opens['total']} "
        f"times: the {planted.machine_opens} loads by link scanners, Apple's privacy proxy and "
        f"prefetchers count in the total, never as a reader (nor as a taste the models learn). "
        f"Likewise {clicks['unique']} people clicked, of {clicks['total']} clicks.",
        highlight=False,
    )  # fmt: skip
    for entry in report["comparison"]:
        difference, p_value = entry["open"]["difference"], entry["open"]["p_value"]
        if difference is None:
            continue
        verdict = ("a real difference" if p_value < 0.05
                   else "not a clear winner at this size")  # fmt: skip
        console.print(f"the {entry['treatment']} subject line against {entry['against']}: "
                      f"{difference:+.1%} opens, p = {p_value:.3f}: {verdict}.")  # fmt: skip
    console.print(f"{total['unsubscribes']} unsubscribe ({planted.unsubscribed}, by POST); "
                  "later emails skip them.")  # fmt: skip
