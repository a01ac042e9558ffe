"""Engagement events arriving through the event tracker, made into attributed records.

An app's ``_campaign.opened_notification`` (or an ESP's ``_email.delivered``) is a PutEvents
event like any other: it is stored as an interaction (recipes may use it as an event type),
and, when it names a campaign or journey, also as an :class:`EngagementRecord` for reports.
De-duplication keys:

- an event with a ``messageId`` is a receipt about that message: ``(messageId, type[, url])``;
- else an app event: ``(endpoint, eventId)``, the endpoint being the user (or session);
- else (neither) a hash of the endpoint, type, time and attribution.

So replaying a batch changes no count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tastebud.ingest import PutEventsRequest
from tastebud.messaging.attribution import Attribution, split_attribution
from tastebud.messaging.events import CATEGORY, is_engagement
from tastebud.store import EngagementRecord, Event

Attributions = list[Attribution | None]


def split_engagement(request: PutEventsRequest) -> tuple[PutEventsRequest, Attributions]:
    """The request with attribution keys taken out of engagement events' properties (what is
    left is validated against the interactions schema), and each event's attribution (None
    for events that are not attributed engagement)."""
    if not any(is_engagement(event.event_type) for event in request.event_list):
        return request, []
    events, attributions = [], []
    for event in request.event_list:
        attribution = None
        if is_engagement(event.event_type):
            attribution, rest = split_attribution(event.properties)
            event = event.model_copy(update={"properties": rest or None})
        events.append(event)
        attributions.append(attribution)
    return request.model_copy(update={"event_list": events}), attributions


def engagement_records(
    events: Sequence[Event], attributions: Attributions
) -> list[EngagementRecord]:
    """Records for the attributed events among ``events`` (validated, in request order)."""
    records = []
    for event, attribution in zip(events, attributions, strict=False):
        if attribution is None or event.event_type not in CATEGORY:
            continue
        event_type = event.event_type
        endpoint = event.user_id or event.session_id or ""
        a = attribution
        message_key = a.message_id or f"{a.kind}:{a.campaign}:{a.activity}:{a.treatment}:{endpoint}"
        if a.message_id:
            dedup = f"r:{a.message_id}:{event_type}:{a.url or ''}"
        elif event.event_id:
            dedup = f"e:{endpoint}:{event.event_id}"
        else:
            raw = f"{endpoint}\x00{event_type}\x00{event.timestamp}\x00{message_key}\x00{a.url}"
            dedup = "h:" + hashlib.sha256(raw.encode()).hexdigest()[:32]
        records.append(
            EngagementRecord(
                dedup_key=dedup, message_key=message_key, campaign=a.campaign,
                activity=a.activity, treatment=a.treatment, kind=a.kind,
                category=CATEGORY[event_type], event_type=event_type,
                timestamp=float(event.timestamp), user_id=event.user_id, url=a.url,
            )
        )  # fmt: skip
    return records
