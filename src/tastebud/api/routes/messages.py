"""Messages (admin): create one for a segment, preview it, send it, read its report.

The wire names follow the SDK and CLI: ``itemId`` + ``solution`` (+ ``topUsers``) make the
audience from an item-affinity solution, or ``segment`` gives it as the lines of a segment file
(``tastebud batch segment`` answers, or ``{"userId": …}`` objects).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tastebud.api.deps import EngineDep, require_admin
from tastebud.errors import InvalidInput
from tastebud.messaging import read_segment
from tastebud.store import MessageRecord

PREFIX = "/v1/dataset-groups/{group}/messages"
router = APIRouter(prefix=PREFIX, tags=["messages"], dependencies=[Depends(require_admin)])


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class MessageIn(_Wire):
    name: str
    channel: str = Field(description="email, sms or webhook (push).")
    templates: dict[str, str] = Field(
        description='Jinja2 sources by treatment: {"default": "Subject: …\\n…", "B": …}.'
    )
    provider: str = "template"
    html: bool = False
    item_id: str | None = None
    solution: str | None = None
    top_users: int = 100
    segment: list[dict[str, Any]] | None = Field(
        default=None, description="The lines of a segment file, as objects."
    )
    recommendations: int = 3
    activity: str | None = None
    address_field: str | None = None
    banned_words: list[str] = Field(default_factory=list)


class MessageOut(_Wire):
    group: str
    name: str
    channel: str
    provider: str
    item_id: str | None
    solution: str | None
    treatments: list[str]
    users: int
    created_at: float


class SendIn(_Wire):
    dry_run: bool = False


def message_out(record: MessageRecord) -> MessageOut:
    body = record.body
    return MessageOut(
        group=record.group, name=record.name, channel=body["channel"],
        provider=body.get("provider", "template"), item_id=body.get("item_id"),
        solution=body.get("solution"), treatments=sorted(body["templates"]),
        users=len(body["users"]), created_at=record.created_at,
    )  # fmt: skip


@router.post("", status_code=201)
def create(group: str, body: MessageIn, engine: EngineDep) -> MessageOut:
    spec = body.model_dump(exclude={"name", "segment"})
    if body.segment is not None:
        lines = [_segment_line(row, n) for n, row in enumerate(body.segment)]
        item, spec["users"] = read_segment(lines, source="segment")
        spec["item_id"] = spec["item_id"] or item
    return message_out(engine.messaging.create(group, body.name, spec))


def _segment_line(row: dict[str, Any], n: int) -> str:
    try:
        return orjson.dumps(row).decode()
    except orjson.JSONEncodeError:  # a lone surrogate ("\\ud800"): no UTF-8 for it
        raise InvalidInput(f"segment[{n}]: text with a lone surrogate (send valid text)") from None


@router.get("")
def list_messages(group: str, engine: EngineDep) -> list[MessageOut]:
    return [message_out(record) for record in engine.messaging.list(group)]


@router.get("/{name}")
def show(group: str, name: str, engine: EngineDep) -> MessageOut:
    return message_out(engine.messaging.get(group, name))


@router.delete("/{name}", status_code=204)
def delete(group: str, name: str, engine: EngineDep) -> Response:
    engine.messaging.delete(group, name)
    return Response(status_code=204)


@router.get("/{name}/preview")
def preview(group: str, name: str, engine: EngineDep, user: str | None = None) -> dict[str, Any]:
    """The draft one user (default: the first of the audience) would get, and its checks."""
    return engine.messaging.preview(group, name, user_id=user)


@router.post("/{name}/send")
def send(group: str, name: str, engine: EngineDep, body: SendIn | None = None) -> dict[str, Any]:
    """Send to every user not sent to yet (a re-run sends nothing twice); ``dryRun`` drafts
    and checks without sending."""
    return engine.messaging.send(group, name, dry_run=bool(body and body.dry_run)).to_dict()


@router.get("/{name}/report")
def report(group: str, name: str, engine: EngineDep) -> dict[str, Any]:
    """Sends, deliveries, unique and total opens and clicks, rates, per activity and treatment."""
    return engine.messaging.report(group, name)
