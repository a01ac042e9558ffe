"""Checks every draft passes before it can be sent: length per channel, banned words, the
unsubscribe link of an email, and no placeholder left unfilled."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from tastebud.messaging.content import Draft

# GSM 03.38: the basic set takes one septet, the extension table two (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
_LEFTOVER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{[A-Za-z_][\w.]*\}|\[[A-Z][A-Z_]{2,}\]")
MAX_EMAIL_SUBJECT = 200
MAX_EMAIL_BODY = 100_000
MAX_PUSH_BYTES = 4000  # APNs and FCM both cap a payload near 4 KB


def sms_parts(text: str) -> tuple[str, int, int]:
    """``(encoding, characters, parts)``: GSM-7 when every character is in the GSM set (160
    per part, 153 each once concatenated), else UCS-2 (70, then 67)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    parts = 1 if units <= single else math.ceil(units / multi)
    return encoding, units, parts


def check_draft(
    draft: Draft, *, channel: str, banned_words: Sequence[str], unsubscribe_url: str,
    max_sms_parts: int,
) -> list[str]:  # fmt: skip
    """What is wrong with ``draft`` (empty when it may be sent)."""
    problems = _length(draft, channel, max_sms_parts)
    text = f"{draft.subject}\n{draft.body}"
    for word in banned_words:
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE):
            problems.append(f"banned word {word!r}")
    if channel == "email" and unsubscribe_url not in draft.body:
        problems.append("email: no unsubscribe link ({{ unsubscribe_url }})")
    leftover = _LEFTOVER.search(text)
    if leftover:
        problems.append(f"unknown placeholder {leftover.group(0)!r} left in the draft")
    return problems


def _length(draft: Draft, channel: str, max_sms_parts: int) -> list[str]:
    if not draft.body.strip():
        return ["body: empty"]
    if channel == "sms":
        encoding, units, parts = sms_parts(draft.body)
        if parts > max_sms_parts:
            per_part = 160 if encoding == "GSM-7" else 70
            return [
                f"length: {units} {encoding} characters make {parts} SMS parts; at most "
                f"{max_sms_parts} allowed ({per_part} characters per part)"
            ]
    elif channel == "email":
        if not draft.subject:
            return ["subject: missing (start the template with a 'Subject: …' line)"]
        if len(draft.subject) > MAX_EMAIL_SUBJECT or len(draft.body) > MAX_EMAIL_BODY:
            return [f"length: subject over {MAX_EMAIL_SUBJECT} or body over {MAX_EMAIL_BODY}"]
    elif len(f"{draft.subject}{draft.body}".encode()) > MAX_PUSH_BYTES:
        return [f"length: a push notification carries at most {MAX_PUSH_BYTES} bytes"]
    return []
