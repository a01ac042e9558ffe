"""Real local receivers for the channels: an SMTP server (aiosmtpd), an HTTP receiver for the
webhook provider, and an HTTP server that answers like an OpenAI-compatible chat endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tastebud.messaging.inbox import Inbox, smtp_inbox


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """An SMTP server on localhost; yields its port and the inbox it fills."""
    with smtp_inbox() as inbox:
        yield inbox.port, inbox


Responder = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


class Receiver:
    """What an :func:`http_receiver` got; ``statuses`` are answered first, then 200."""

    def __init__(self, url: str, received: list[dict[str, Any]]) -> None:
        self.url = url
        self.received = received
        self.statuses: list[int] = []


@contextmanager
def http_receiver(respond: Responder | None = None) -> Iterator[Receiver]:
    """An HTTP server taking JSON POSTs. ``respond`` picks each answer's status and body
    (default: the receiver's ``statuses`` in turn, then 200 ``{}``)."""
    received: list[dict[str, Any]] = []
    receiver = Receiver("", received)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                received.append(body)
                if respond:
                    status, answer = respond(body)
                else:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    answer = {}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def chat_answer(subject: str, body: str) -> dict[str, Any]:
    """A chat-completions answer whose message content is the structured JSON output."""
    content = json.dumps({"subject": subject, "body": body})
    return {"id": "chat-1", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]}  # fmt: skip
