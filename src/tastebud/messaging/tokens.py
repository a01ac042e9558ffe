"""Signed tracking tokens: what a pixel, a click or an unsubscribe link is about.

A token carries the message's attribution (``messageId``, ``campaignId``, ``activityId``,
``treatmentId``), the recipient, the item and the send time, signed with itsdangerous (HMAC):
the public tracking endpoints trust nothing a token does not sign, and a tampered token is
refused (404) before anything is read or written.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import astuple, dataclass, replace
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer

from tastebud.errors import NotFound
from tastebud.messaging.spec import message_id

_SALT = "tastebud.messaging.tracking"


@dataclass(frozen=True, slots=True)
class TrackingToken:
    group: str
    message: str  # the message's name, which is its campaign id
    channel: str
    activity: str
    treatment: str
    user_id: str
    item_id: str | None
    sent_at: int
    url: str | None = None  # the original link of a click token

    @property
    def campaign(self) -> str:
        return self.message

    @property
    def message_id(self) -> str:
        return message_id(self.group, self.message, self.user_id)

    def for_link(self, url: str) -> TrackingToken:
        return replace(self, url=url)


class TokenSigner:
    """Signs and reads tracking tokens with one secret."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def sign(self, token: TrackingToken) -> str:
        # A list, not a dict: the token goes into every link (and SMS), so it is kept short.
        return str(self._serializer.dumps(astuple(token)))

    def read(self, signed: str) -> TrackingToken:
        """Raises:
        NotFound: the token was tampered with, signed by another key, or is malformed."""
        try:
            return TrackingToken(*self._serializer.loads(signed))
        except (BadData, TypeError, ValueError):
            raise NotFound("tracking token: not a valid link") from None


def load_secret(configured: str | None, home: Path) -> str:
    """The configured secret, else the one kept in ``home/messaging.key`` (made once, mode 600;
    the first of several processes starting together wins, the others read it)."""
    if configured:
        return configured
    path = home / "messaging.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".messaging.key.{os.getpid()}")
        scratch.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        os.chmod(scratch, 0o600)
        try:
            os.link(scratch, path)  # atomic: fails when another process made it first
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    return path.read_text(encoding="utf-8").strip()
