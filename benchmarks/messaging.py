"""Messaging and engagement (issue 16): ingestion throughput and machine-open detection.

    ./dev bench messaging [--events 50000] [--messages 5000] [--seed 0]

1. Throughput: ``--events`` engagement events (Android flat keys and iOS nested payloads,
   sends, receipts, opens; one batch in ten replayed) as PutEvents requests of 100 events,
   through ``Engine.put_events`` into a fresh SQLite store: attribution split off, validated,
   engagement de-duplicated and attributed, interactions group-committed. One thread; the
   figure is events/s of wall time and of this process's CPU time.
2. Detection: ``--messages`` sent emails and a synthetic set of pixel loads with known
   answers: human opens (1-3 loads each, 10 s to 2 days after sending, some through Gmail's
   image proxy), Apple Mail Privacy Protection prefetches, ``Sec-Purpose: prefetch`` loads,
   security scanners, and human-looking loads within 2 s of sending. Each load goes through
   the tracking service; the unique human opens it counts are scored against the truth
   (precision and recall).
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.messaging.tokens import TrackingToken
from tastebud.settings import Settings

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
]
SCANNERS = ["Barracuda Sentinel (EE)", "Mimecast-Link-Scanner/2.1", "python-requests/2.31",
            "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36", ""]  # fmt: skip


def engagement_requests(n_events: int, rng: random.Random) -> list[PutEventsRequest]:
    requests, made = [], 0
    types = ["_campaign.send", "_campaign.received_foreground", "_campaign.opened_notification",
             "_email.delivered", "_email.open", "_email.click"]  # fmt: skip
    while made < n_events:
        events = []
        for _ in range(100):
            campaign = f"c{rng.randrange(20)}"
            attribution = {"campaign_id": campaign, "campaign_activity_id": "a1",
                           "treatment_id": str(rng.randrange(2))}  # fmt: skip
            event_type = rng.choice(types)
            if event_type.startswith("_email."):
                properties = {"campaignId": campaign, "messageId": f"m{rng.randrange(50_000)}",
                              "url": "https://example.com/x"}  # fmt: skip
            elif rng.random() < 0.5:
                properties = attribution  # Android
            else:
                properties = {"data": {"pinpoint": {"campaign": attribution}}}  # iOS
            events.append({"eventId": f"e{made}", "itemId": f"i{rng.randrange(500)}",
                           "eventType": event_type, "sentAt": 1_700_000_000 + made,
                           "properties": properties})  # fmt: skip
            made += 1
        body = {"userId": f"u{rng.randrange(10_000)}", "eventList": events}
        requests.append(PutEventsRequest.model_validate(body))
    replays = requests[::10]  # a client retrying one batch in ten
    return requests + replays


def throughput(engine: Engine, group: str, requests: list[PutEventsRequest]) -> dict[str, float]:
    events = sum(len(r.event_list) for r in requests)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    started = time.perf_counter()
    for request in requests:
        engine.put_events(group, request)
    wall = time.perf_counter() - started
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
    return {"events": events, "seconds": wall, "events_per_s": events / wall,
            "events_per_cpu_s": events / max(cpu, 1e-9)}  # fmt: skip


def loads(n_messages: int, rng: random.Random) -> tuple[list[tuple[int, float, dict]], set[int]]:
    """``(message, seconds since send, headers)`` of every pixel load, and the human openers."""
    plan: list[tuple[int, float, dict[str, str]]] = []
    humans: set[int] = set()
    for message in range(n_messages):
        kind = rng.random()
        if rng.random() < 0.3:  # Apple Mail Privacy Protection preloads on arrival
            plan.append((message, rng.uniform(0, 600), {"user-agent": "Mozilla/5.0"}))
        if rng.random() < 0.15:  # a security gateway fetches everything at once
            plan.append((message, rng.uniform(0, 1.5), {"user-agent": rng.choice(SCANNERS)}))
        if rng.random() < 0.05:  # a client prefetching, and saying so
            plan.append((message, rng.uniform(3, 60), {"user-agent": BROWSERS[0],
                                                       "sec-purpose": "prefetch"}))  # fmt: skip
        if rng.random() < 0.05:  # human-looking, but within 2 s of sending: a scanner
            plan.append((message, rng.uniform(0, 1.9), {"user-agent": rng.choice(BROWSERS)}))
        if kind < 0.35:  # a person opens it, once or more
            humans.add(message)
            for _ in range(rng.randint(1, 3)):
                plan.append((message, rng.uniform(10, 2 * 86_400),
                             {"user-agent": rng.choice(BROWSERS)}))  # fmt: skip
    rng.shuffle(plan)
    return plan, humans


def detection(engine: Engine, group: str, n_messages: int, rng: random.Random) -> dict[str, float]:
    plan, humans = loads(n_messages, rng)
    service = engine.messaging
    for message, age, headers in plan:
        now = int(time.time())  # per load: the run takes longer than the 2 s rule
        token = TrackingToken(group=group, message="bench", channel="email", activity="email",
                              treatment="default", user_id=f"u{message}", item_id=None,
                              sent_at=now - int(age) if age >= 2 else now)  # fmt: skip
        service.track(service.signer.sign(token), "open", headers)
    key_of = {TrackingToken(group, "bench", "email", "email", "default", f"u{m}", None,
                            0).message_id: m for m in range(n_messages)}  # fmt: skip
    counted = {key_of[c.message_key] for c in engine.store.engagement_counts(group, "bench")
               if c.category == "open" and c.human}  # fmt: skip
    hits = len(counted & humans)
    return {
        "loads": len(plan),
        "human_openers": len(humans),
        "counted": len(counted),
        "precision": hits / max(len(counted), 1),
        "recall": hits / max(len(humans), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        with Engine(settings) as engine:
            engine.ensure_group("bench")
            result = throughput(engine, "bench", engagement_requests(args.events, rng))
            print(f"ingestion: {result['events']:,} engagement events in "
                  f"{result['seconds']:.2f} s = {result['events_per_s']:,.0f} events/s "
                  f"({result['events_per_cpu_s']:,.0f} per CPU second)")  # fmt: skip
            engine.ensure_group("opens")
            scored = detection(engine, "opens", args.messages, rng)
            print(
                f"unique human opens: {scored['counted']:,} counted of "
                f"{scored['human_openers']:,} true, from {scored['loads']:,} pixel loads; "
                f"precision {scored['precision']:.4f}, recall {scored['recall']:.4f}"
            )


if __name__ == "__main__":
    main()
