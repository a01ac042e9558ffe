"""The messaging service: messages created, previewed, sent and reported; engagement from
tracking links and from the event tracker recorded and attributed (issue 16)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tastebud.errors import InvalidInput, NotFound
from tastebud.ingest import EventTracker
from tastebud.messaging.channels import Channel, EmailChannel, WebhookChannel
from tastebud.messaging.drafts import Drafter, DraftRules
from tastebud.messaging.events import CATEGORY, TRACKED
from tastebud.messaging.machines import machine_reason
from tastebud.messaging.providers import ChatProvider, ContentProvider, TemplateProvider
from tastebud.messaging.recipients import Recipients
from tastebud.messaging.reports import build_report
from tastebud.messaging.sending import Sender, SendResult
from tastebud.messaging.spec import MessageSpec, check_name
from tastebud.messaging.tokens import TokenSigner, TrackingToken, load_secret
from tastebud.serving.service import Recommender
from tastebud.settings import Settings
from tastebud.store import EngagementRecord, Event, MessageRecord, Store

TOP_USERS_LIMIT = 100_000


class MessagingService:
    """Messages of every group of one store. Thread-safe for tracking; one send at a time per
    message is what the delivery claims guarantee, whatever the callers."""

    def __init__(
        self, store: Store, tracker: EventTracker, recommender: Recommender, settings: Settings
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.recommender = recommender
        self.settings = settings.messaging
        self._home = settings.home
        self._signer: TokenSigner | None = None

    @property
    def signer(self) -> TokenSigner:
        if self._signer is None:  # made on first use: most commands never sign anything
            self._signer = TokenSigner(load_secret(self.settings.secret, self._home))
        return self._signer

    # messages -------------------------------------------------------------------------------
    def create(self, group: str, name: str, body: Mapping[str, Any]) -> MessageRecord:
        """Create a message from ``body`` (see :class:`MessageSpec`); with ``item_id`` and
        ``solution`` but no ``users``, the audience is the item's top ``top_users`` users.

        Raises:
            InvalidInput: a bad field, template, channel or provider (named).
            NotFound: no such solution. AlreadyExists: the name is taken.
        """
        check_name(name)
        body = dict(body)
        top_users = int(body.pop("top_users", 100))
        if body.get("solution") is not None:
            self.store.get_solution(group, str(body["solution"]))
        if not body.get("users"):
            body["users"] = self._segment(group, body, top_users)
        spec = MessageSpec.parse(body)
        self._drafter(spec)  # compiles every template: syntax and placeholders checked now
        if spec.provider == "llm" and not self.settings.llm_url:
            raise InvalidInput("provider: llm is off; set TASTEBUD_MESSAGING__LLM_URL to use it")
        self._channel(spec).close()  # a channel that is not configured fails now
        record = MessageRecord(group=group, name=name, body=spec.model_dump(exclude_none=True),
                               created_at=time.time())  # fmt: skip
        self.store.put_message(record)
        return self.store.get_message(group, name)

    def _segment(self, group: str, body: Mapping[str, Any], top_users: int) -> list[str]:
        item, solution = body.get("item_id"), body.get("solution")
        if item is None or solution is None:
            raise InvalidInput("audience: give an item and an item-affinity solution, or users")
        if not 1 <= top_users <= TOP_USERS_LIMIT:
            raise InvalidInput(f"top_users: expected 1-{TOP_USERS_LIMIT}, got {top_users}")
        answer = self.recommender.users_for_item(
            group, {"solution": str(solution)}, item_id=str(item), k=top_users
        )
        if not answer.results:
            raise InvalidInput(f"audience: solution {solution!r} finds no users for {item!r}")
        return [user.id for user in answer.results]

    def get(self, group: str, name: str) -> MessageRecord:
        return self.store.get_message(group, name)

    def list(self, group: str) -> list[MessageRecord]:
        return self.store.list_messages(group)

    def delete(self, group: str, name: str) -> None:
        self.store.delete_message(group, name)

    def preview(self, group: str, name: str, *, user_id: str | None = None) -> dict[str, Any]:
        """The draft ``user_id`` (default: the first of the audience) would get, and its
        checks; nothing is sent or recorded."""
        sender = self._sender(group, name)
        user = user_id if user_id is not None else sender.spec.users[0]
        token = sender.token(user)
        outcome = sender.draft(token)
        return {"user": user, "treatment": token.treatment, "channel": sender.spec.channel,
                "subject": outcome.draft.subject, "body": outcome.draft.body,
                "provider": outcome.provider, "problems": outcome.problems,
                "fallback": outcome.fallback}  # fmt: skip

    def send(self, group: str, name: str, *, dry_run: bool = False) -> SendResult:
        """Send to every user not sent to yet (see ``sending.py``); ``dry_run`` drafts and
        checks every message without sending or recording anything."""
        sender = self._sender(group, name)
        if dry_run:
            return sender.dry_run()
        channel = self._channel(sender.spec)
        try:
            return sender.run(channel)
        finally:
            channel.close()

    def report(self, group: str, campaign: str) -> dict[str, Any]:
        """Sends, deliveries, opens, clicks and rates of a message (or any campaign or
        journey id that engagement events named) per activity and treatment."""
        counts = self.store.engagement_counts(group, campaign)
        try:
            deliveries = self.store.list_deliveries(
                group, self.store.get_message(group, campaign).name
            )
        except NotFound:
            if not counts:
                raise NotFound(f"no message or campaign {campaign!r} in group {group!r}") from None
            deliveries = []
        return build_report(campaign, counts, deliveries)

    def _sender(self, group: str, name: str) -> Sender:
        record = self.store.get_message(group, name)
        spec = MessageSpec.model_validate(record.body)
        recipients = Recipients(self.store, self.recommender, self.signer, self.settings.public_url)
        return Sender(self.store, group, name, spec, self._drafter(spec), recipients,
                      self.settings, self._record_sent)  # fmt: skip

    def _drafter(self, spec: MessageSpec) -> Drafter:
        rules = DraftRules(channel=spec.channel, html=spec.html,
                           banned_words=[*self.settings.banned_words, *spec.banned_words],
                           max_sms_parts=self.settings.max_sms_parts)  # fmt: skip
        return Drafter(spec.templates, self._provider(spec), rules)

    def _provider(self, spec: MessageSpec) -> ContentProvider:
        if spec.provider == "llm" and self.settings.llm_url:
            return ChatProvider(self.settings.llm_url, model=self.settings.llm_model,
                                cache=self._home / "llm-cache", api_key=self.settings.llm_api_key,
                                timeout=self.settings.llm_timeout_seconds)  # fmt: skip
        return TemplateProvider()

    def _channel(self, spec: MessageSpec) -> Channel:
        if spec.channel == "email":
            return EmailChannel(self.settings)
        if not self.settings.webhook_url:
            raise InvalidInput(
                f"channel {spec.channel}: no provider; set TASTEBUD_MESSAGING__WEBHOOK_URL"
            )
        return WebhookChannel(spec.channel, self.settings.webhook_url)

    # engagement -----------------------------------------------------------------------------
    def record(self, group: str, records: Sequence[EngagementRecord]) -> int:
        """Store attributed engagement events (each dedup key once); returns how many were new."""
        return self.store.put_engagement(group, records)

    def _record_sent(self, token: TrackingToken, event_type: str, url: str | None) -> None:
        # Engagement only, not an interaction: a solution without event weights learns from
        # every event type, and seen-item exclusion would hide the promoted item from the user.
        self._track(token, event_type, dedup=f"r:{token.message_id}:{event_type}:", url=url,
                    machine=None, interaction=False)  # fmt: skip

    def track(self, signed: str, kind: str, headers: Mapping[str, str]) -> TrackingToken:
        """A pixel load (``open``), a click or an unsubscribe through a signed link.

        Every load and click counts raw; a likely machine's (``machines.py``) is kept out of
        the unique counts and of the interactions recipes learn from.

        Raises:
            NotFound: the token is not valid (tampered, another key) or its group is gone.
        """
        token = self.signer.read(signed)
        event_type = TRACKED[token.channel][kind]
        if kind == "unsubscribe":  # a POST: one per message is enough
            self._track(token, event_type, dedup=f"r:{token.message_id}:{event_type}:",
                        url=None, machine=None, interaction=False)  # fmt: skip
            return token
        machine = machine_reason(
            headers, seconds_since_send=time.time() - token.sent_at,
            machine_seconds=self.settings.machine_open_seconds,
        )  # fmt: skip
        self._track(token, event_type, dedup=f"l:{uuid.uuid4().hex}", url=token.url,
                    machine=machine, interaction=machine is None)  # fmt: skip
        return token

    def _track(
        self, token: TrackingToken, event_type: str, *, dedup: str, url: str | None,
        machine: str | None, interaction: bool,
    ) -> None:  # fmt: skip
        record = EngagementRecord(
            dedup_key=dedup + (url or ""), message_key=token.message_id, campaign=token.campaign,
            activity=token.activity, treatment=token.treatment, kind="campaign",
            category=CATEGORY[event_type], event_type=event_type, timestamp=time.time(),
            user_id=token.user_id, url=url, machine=machine is not None,
        )  # fmt: skip
        self.store.put_engagement(token.group, [record])
        if interaction and token.item_id is not None:
            # One interaction per message and type (and link): what recipes learn from.
            link = hashlib.sha256((url or "").encode()).hexdigest()[:12] if url else ""
            event = Event(item_id=token.item_id, timestamp=int(time.time()),
                          user_id=token.user_id, event_type=event_type,
                          event_id=f"{token.message_id}:{event_type}:{link}")  # fmt: skip
            self.tracker.put(token.group, [event])
