"""Delivery channels: email over SMTP, SMS and push through a webhook provider.

A channel delivers one :class:`Envelope` or raises :class:`TransientError` (try again: a
connection lost, SMTP 4xx, HTTP 429/5xx) or :class:`PermanentError` (never: SMTP 5xx, HTTP
4xx). Retries, pacing and idempotency are the sender's (``sending.py``).
"""

from __future__ import annotations

import contextlib
import html
import re
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import httpx

from tastebud.settings import MessagingSettings

TRACKING_HEADER = "X-Tastebud-Tracking"


class TransientError(Exception):
    """Worth another try."""


class PermanentError(Exception):
    """The provider refused this message for good."""


@dataclass(frozen=True, slots=True)
class Envelope:
    to: str
    subject: str
    body: str
    html: bool
    message_id: str
    token: str  # the signed tracking token (header, push payload)
    attribution: dict[str, str]  # messageId, campaignId, activityId, treatmentId
    unsubscribe_url: str
    user_id: str
    extra: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str

    def deliver(self, envelope: Envelope) -> None: ...
    def close(self) -> None: ...


class EmailChannel:
    """SMTP, one connection kept for a run (reopened when the server drops it)."""

    name = "email"

    def __init__(self, settings: MessagingSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def deliver(self, envelope: Envelope) -> None:
        mail = build_mail(envelope, sender=self.settings.smtp_sender)
        try:
            self._connection().send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise _smtp_error(min(codes), str(error.recipients)) from error
        except smtplib.SMTPResponseException as error:
            raise _smtp_error(error.smtp_code, str(error.smtp_error)) from error
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise TransientError(f"smtp {self.settings.smtp_host}: {error}") from error

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            s = self.settings
            self._smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30)
            if s.smtp_starttls:
                self._smtp.starttls()
            if s.smtp_username:
                self._smtp.login(s.smtp_username, s.smtp_password or "")
        return self._smtp

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None


def _smtp_error(code: int, text: str) -> Exception:
    message = f"smtp {code}: {text}"
    return TransientError(message) if 400 <= code < 500 else PermanentError(message)


def build_mail(envelope: Envelope, *, sender: str) -> EmailMessage:
    """The MIME message: plain text, or HTML with a plain-text alternative; the tracking token
    in a header; one-click unsubscribe (RFC 8058) pointing at the signed link."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = envelope.to
    mail["Subject"] = envelope.subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<{envelope.message_id}@tastebud>"
    mail[TRACKING_HEADER] = envelope.token
    for key, value in envelope.attribution.items():
        mail[f"X-Tastebud-{key}"] = value
    mail["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if envelope.html:
        mail.set_content(_text_of(envelope.body))
        mail.add_alternative(envelope.body, subtype="html")
    else:
        mail.set_content(envelope.body)
    return mail


def _text_of(markup: str) -> str:
    text = re.sub(r"<(br|/p|/div|/h\d|/li)\s*/?>", "\n", markup, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip() + "\n"


class WebhookChannel:
    """SMS (``sms``) or push (``webhook``) through a provider that takes JSON over HTTP."""

    def __init__(self, name: str, url: str, *, timeout: float = 10.0) -> None:
        self.name = name
        self.url = url
        self._http = httpx.Client(timeout=timeout)

    def deliver(self, envelope: Envelope) -> None:
        try:
            response = self._http.post(self.url, json=self.payload(envelope))
        except httpx.HTTPError as error:
            raise TransientError(f"webhook {self.url}: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"webhook {self.url}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"webhook {self.url}: HTTP {response.status_code}")

    def payload(self, envelope: Envelope) -> dict[str, Any]:
        base = {"channel": "sms" if self.name == "sms" else "push", "to": envelope.to,
                "messageId": envelope.message_id, "tracking": envelope.token,
                "attributes": envelope.attribution}  # fmt: skip
        if self.name == "sms":
            return base | {"body": envelope.body}
        # The push payload apps already parse: the iOS-style nested attribution.
        a = envelope.attribution
        campaign = {"campaign_id": a["campaignId"], "campaign_activity_id": a["activityId"],
                    "treatment_id": a["treatmentId"]}  # fmt: skip
        return base | {
            "title": envelope.subject, "body": envelope.body,
            "data": {"pinpoint": {"campaign": campaign}, "messageId": envelope.message_id},
        }  # fmt: skip

    def close(self) -> None:
        self._http.close()


class RateLimiter:
    """At most ``rate`` calls of :meth:`wait` per second, evenly spaced (thread-safe)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)
