"""Sending a message to its audience: one delivery claim per (message, user), a draft, the
channel paced by its rate limit, transient errors retried, the outcome recorded.

A user whose row says ``sent``, ``failed`` or ``skipped`` is never sent to again, so a re-run
(after a crash, or by mistake) only sends what is left. A claim left ``sending`` by a run that
died is taken again after :data:`STALE_CLAIM_SECONDS`: in that window a message may go twice
(at least once, never lost), and its fixed ``messageId`` lets receivers drop the copy.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tastebud.errors import InvalidInput
from tastebud.messaging.channels import (
    Channel,
    Envelope,
    PermanentError,
    RateLimiter,
    TransientError,
)
from tastebud.messaging.drafts import Drafter, DraftOutcome
from tastebud.messaging.events import FAILURE_EVENT, SEND_EVENT, TRACKED
from tastebud.messaging.recipients import Recipients, facts
from tastebud.messaging.spec import MessageSpec
from tastebud.messaging.tokens import TrackingToken
from tastebud.settings import MessagingSettings
from tastebud.store import Store

_log = logging.getLogger(__name__)
STALE_CLAIM_SECONDS = 600.0

Record = Callable[[TrackingToken, str, str | None], None]  # token, event type, item


@dataclass
class SendResult:
    message: str
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)  # sent, already, skipped, failed …
    drafts: list[dict[str, Any]] = field(default_factory=list)  # dry runs: what would go
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "dryRun": self.dry_run, "counts": dict(self.counts),
                "drafts": self.drafts, "seconds": round(self.seconds, 3)}  # fmt: skip


@dataclass
class Sender:
    """Sends one message (its spec, drafter and channel) in the calling thread."""

    store: Store
    group: str
    name: str
    spec: MessageSpec
    drafter: Drafter
    recipients: Recipients
    settings: MessagingSettings
    record: Record  # writes an engagement event (and its interaction)

    def token(self, user_id: str) -> TrackingToken:
        return TrackingToken(
            group=self.group, message=self.name, channel=self.spec.channel,
            activity=self.spec.activity_id, treatment=self.spec.treatment_of(self.name, user_id),
            user_id=user_id, item_id=self.spec.item_id, sent_at=int(time.time()),
        )  # fmt: skip

    def draft(self, token: TrackingToken) -> DraftOutcome:
        context = self.recipients.context(self.group, self.name, self.spec, token)
        return self.drafter.write(token.treatment, context, facts(context, self.spec))

    def dry_run(self) -> SendResult:
        result = SendResult(self.name, dry_run=True)
        started = time.monotonic()
        for user_id in self.spec.users:
            outcome = self.draft(self.token(user_id))
            result.counts["would_fail" if outcome.problems else "would_send"] += 1
            result.drafts.append(_draft_view(user_id, outcome))
        result.seconds = time.monotonic() - started
        return result

    def run(self, channel: Channel) -> SendResult:
        result = SendResult(self.name, dry_run=False)
        started = time.monotonic()
        limiter = RateLimiter(self.settings.rate_per_second.get(self.spec.channel, 10.0))
        for user_id in self.spec.users:
            token = self.token(user_id)
            claimed = self.store.claim_delivery(
                self.group, self.name, user_id, message_id=token.message_id,
                treatment=token.treatment, stale_before=time.time() - STALE_CLAIM_SECONDS,
            )  # fmt: skip
            if not claimed:
                result.counts["already"] += 1
                continue
            status, attempts, detail = self._deliver(channel, limiter, token)
            self.store.finish_delivery(self.group, self.name, user_id, status=status,
                                       attempts=attempts, detail=detail)  # fmt: skip
            result.counts[status] += 1
        result.seconds = time.monotonic() - started
        _log.info("message sent group=%s message=%s %s", self.group, self.name,
                  " ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))  # fmt: skip
        return result

    def _deliver(
        self, channel: Channel, limiter: RateLimiter, token: TrackingToken
    ) -> tuple[str, int, dict[str, Any]]:
        address = self._address(token.user_id)
        if address is None:
            return "skipped", 0, {"reason": f"user has no {self.spec.address} field"}
        if self.store.opted_out(self.group, token.user_id,
                                [TRACKED[self.spec.channel]["unsubscribe"]]):  # fmt: skip
            return "skipped", 0, {"reason": "unsubscribed"}
        try:
            outcome = self.draft(token)
        except InvalidInput as exc:  # e.g. a field this user's profile lacks: this user only
            return "failed", 0, {"problems": [exc.message]}
        detail: dict[str, Any] = {"provider": outcome.provider, "fallback": outcome.fallback}
        if outcome.problems:
            return "failed", 0, detail | {"problems": outcome.problems}
        envelope = self._envelope(address, token, outcome)
        last_error = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            limiter.wait()
            try:
                channel.deliver(envelope)
            except TransientError as exc:
                last_error = str(exc)
                if attempt < self.settings.max_attempts:
                    time.sleep(self.settings.retry_backoff_seconds * 2 ** (attempt - 1))
                continue
            except PermanentError as exc:
                self.record(token, FAILURE_EVENT[self.spec.channel], None)
                return "failed", attempt, detail | {"error": str(exc)}
            self.record(token, SEND_EVENT[self.spec.channel], None)
            return "sent", attempt, detail
        return "pending", self.settings.max_attempts, detail | {"error": last_error}

    def _address(self, user_id: str) -> str | None:
        field_name = self.spec.address
        if field_name is None:
            return user_id
        value = self.recipients.profile(self.group, user_id).get(field_name)
        return str(value) if value else None

    def _envelope(self, address: str, token: TrackingToken, outcome: DraftOutcome) -> Envelope:
        body = outcome.draft.body
        if self.spec.channel == "email" and self.spec.html:
            body = _with_pixel(body, self.recipients.link("open", token))
        attribution = {"messageId": token.message_id, "campaignId": token.campaign,
                       "activityId": token.activity, "treatmentId": token.treatment}  # fmt: skip
        return Envelope(
            to=address, subject=outcome.draft.subject, body=body, html=self.spec.html,
            message_id=token.message_id, token=self.recipients.signer.sign(token),
            attribution=attribution,
            unsubscribe_url=self.recipients.link("unsubscribe", token), user_id=token.user_id,
        )  # fmt: skip


def _with_pixel(body: str, pixel_url: str) -> str:
    pixel = f'<img src="{pixel_url}" width="1" height="1" alt="">'
    at = body.lower().rfind("</body>")
    return body + pixel if at < 0 else body[:at] + pixel + body[at:]


def _draft_view(user_id: str, outcome: DraftOutcome) -> dict[str, Any]:
    return {"user": user_id, "subject": outcome.draft.subject, "body": outcome.draft.body,
            "provider": outcome.provider, "problems": outcome.problems,
            "fallback": outcome.fallback}  # fmt: skip
