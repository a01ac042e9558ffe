"""What a message is: its audience, templates (one per treatment), channel and provider."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tastebud.errors import InvalidInput

Channel = Literal["email", "sms", "webhook"]
CHANNELS: tuple[str, ...] = ("email", "sms", "webhook")
PROVIDERS: tuple[str, ...] = ("template", "llm")
DEFAULT_TREATMENT = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
# Where a channel finds a user's address when the message does not say.
ADDRESS_FIELD = {"email": "EMAIL", "sms": "PHONE", "webhook": None}


class MessageSpec(BaseModel):
    """Stored as the message's body. ``users`` is the audience, fixed when the message is
    created (a segment computed then, or read from a segment file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    provider: Literal["template", "llm"] = "template"
    templates: Annotated[dict[str, str], Field(min_length=1)]  # treatment -> template source
    html: bool = False
    users: Annotated[list[str], Field(min_length=1)]
    item_id: str | None = None
    solution: str | None = None  # the recommendations in content (and the segment's source)
    recommendations: Annotated[int, Field(ge=0, le=20)] = 3
    activity: str | None = None  # default: the channel
    address_field: str | None = None  # default: EMAIL for email, PHONE for sms, none for push
    banned_words: list[str] = Field(default_factory=list)

    @property
    def activity_id(self) -> str:
        return self.activity or self.channel

    @property
    def address(self) -> str | None:
        return self.address_field or ADDRESS_FIELD[self.channel]

    def treatment_of(self, name: str, user_id: str) -> str:
        """The user's treatment: a stable hash of (message, user) split evenly."""
        names = sorted(self.templates, key=lambda t: (t != DEFAULT_TREATMENT, t))
        digest = hashlib.sha256(f"{name}\x00{user_id}".encode()).digest()
        return names[int.from_bytes(digest[:8], "big") % len(names)]

    @classmethod
    def parse(cls, body: dict[str, object]) -> MessageSpec:
        if body.get("channel") not in CHANNELS:
            raise InvalidInput(
                f"channel: expected one of {', '.join(CHANNELS)}, got {body.get('channel')!r}"
            )
        if body.get("provider", "template") not in PROVIDERS:
            raise InvalidInput(f"provider: expected template or llm, got {body.get('provider')!r}")
        try:
            return cls.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "message"
            raise InvalidInput(f"{where}: {first['msg']}") from None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"message name {name!r}: use 1-63 letters, digits, '-' or '_'")
    return name


def message_id(group: str, name: str, user_id: str) -> str:
    """The same (message, user) always gets the same id: a re-run cannot mint a second one."""
    return "msg-" + hashlib.sha256(f"{group}\x00{name}\x00{user_id}".encode()).hexdigest()[:24]


def read_segment(lines: Iterable[str], *, source: str) -> tuple[str | None, list[str]]:
    """The item and users of a segment file: the output of ``tastebud batch segment``
    (``{"input": {"itemId": …}, "output": {"usersList": […]}}`` lines) or ``{"userId": …}``
    lines. Returns ``(item id or None, users in file order, each once)``.

    Raises:
        InvalidInput: a line that is not JSON, or names no users (with its line number).
    """
    items: list[str] = []
    users: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise InvalidInput(f"{source}: line {number}: not valid JSON ({error})") from None
        found = _users_of(row)
        if found is None:
            raise InvalidInput(
                f'{source}: line {number}: expected {{"userId": …}} or a batch segment '
                "answer with output.usersList"
            )
        users.update(dict.fromkeys(found))
        item = row.get("input", {}).get("itemId") if isinstance(row.get("input"), dict) else None
        if isinstance(item, str):
            items.append(item)
    if not users:
        raise InvalidInput(f"{source}: no users in the segment")
    return (items[0] if len(set(items)) == 1 else None), list(users)


def _users_of(row: object) -> Sequence[str] | None:
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("userId"), str):
        return [row["userId"]]
    output = row.get("output")
    if isinstance(output, dict) and isinstance(output.get("usersList"), list):
        return [str(user) for user in output["usersList"]]
    return None
