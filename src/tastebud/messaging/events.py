"""The managed messaging service's engagement event names, and what each one counts as.

Apps, dashboards and ESP webhooks built for that service send these names unchanged; reports
group them into categories (a send, a delivery, an open …).
"""

from __future__ import annotations

from typing import Final

_EMAIL = {
    "send": "send", "delivered": "delivery", "open": "open", "click": "click",
    "hardbounce": "bounce", "softbounce": "bounce", "complaint": "complaint",
    "unsubscribe": "unsubscribe",
}  # fmt: skip
_SMS = {"BUFFERED": "send", "SUCCESS": "delivery", "FAILURE": "failure", "OPTOUT": "unsubscribe"}
_PUSH = {
    "send": "send", "opened_notification": "open", "received_foreground": "delivery",
    "received_background": "delivery",
    # tastebud's own, for what its tracking links and webhook channel see
    "click": "click", "unsubscribe": "unsubscribe", "send_failure": "failure",
}  # fmt: skip

CATEGORY: Final[dict[str, str]] = {
    **{f"_email.{name}": category for name, category in _EMAIL.items()},
    **{f"_SMS.{name}": category for name, category in _SMS.items()},
    "_SMS.click": "click",  # tastebud's: a tracked link in an SMS
    **{f"_{kind}.{name}": category for kind in ("campaign", "journey")
       for name, category in _PUSH.items()},
}  # fmt: skip
"""Every engagement event type and its category."""

PREFIXES: Final = ("_email.", "_SMS.", "_campaign.", "_journey.")

# What a channel records when a provider accepted a message.
SEND_EVENT: Final = {"email": "_email.send", "sms": "_SMS.BUFFERED", "webhook": "_campaign.send"}
# ... and when it refused it for good.
FAILURE_EVENT: Final = {
    "email": "_email.hardbounce", "sms": "_SMS.FAILURE", "webhook": "_campaign.send_failure",
}  # fmt: skip

# What the tracking endpoints record, per channel of the message.
TRACKED: Final = {
    "email": {"open": "_email.open", "click": "_email.click", "unsubscribe": "_email.unsubscribe"},
    "sms": {"open": "_SMS.click", "click": "_SMS.click", "unsubscribe": "_SMS.OPTOUT"},
    "webhook": {"open": "_campaign.opened_notification", "click": "_campaign.click",
                "unsubscribe": "_campaign.unsubscribe"},
}  # fmt: skip


def is_engagement(event_type: str | None) -> bool:
    return event_type is not None and event_type.startswith(PREFIXES)
