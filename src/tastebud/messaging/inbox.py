"""A local SMTP server that keeps what it receives (aiosmtpd): the mail provider of
``tastebud demo --scenario marketing`` and of the messaging tests."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    """The mail an :func:`smtp_inbox` accepted, parsed, in arrival order."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(parsed, EmailMessage)  # what policy=default parses to
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@contextmanager
def smtp_inbox(host: str = "127.0.0.1") -> Iterator[Inbox]:
    """An SMTP server on a free port of ``host`` while the block runs."""
    inbox = Inbox(free_port(host))
    controller = Controller(inbox, hostname=host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
