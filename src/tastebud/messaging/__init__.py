"""Messaging (issue 16): messages written from templates or a language model, sent by email,
SMS or push, and engagement (deliveries, opens, clicks) tracked and attributed to campaigns."""

from tastebud.messaging.engagement import engagement_records, split_engagement
from tastebud.messaging.sending import SendResult
from tastebud.messaging.service import MessagingService
from tastebud.messaging.spec import MessageSpec, read_segment

__all__ = [
    "MessageSpec",
    "MessagingService",
    "SendResult",
    "engagement_records",
    "read_segment",
    "split_engagement",
]
