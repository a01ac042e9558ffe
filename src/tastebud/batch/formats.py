"""Batch job files: JSON Lines in the managed service's formats, parsed and written line by line.

Input lines of a recommendation job:

    {"userId": "u1"}                                  items for a user
    {"itemId": "i9"}                                  items like an item (similar-items solutions)
    {"userId": "u1", "itemList": ["a", "b"]}          the list ranked for the user

and of a segment job ``{"itemId": "i9"}`` or ``{"itemAttributes": "GENRES = \"Comedy\""}``. Any
line may carry ``"filterValues": {...}`` (recommendation lines also ``"context": {...}``). Each
output line repeats its input: ``{"input": {...}, "output": {...}, "error": null}``; a line that
cannot be answered gets ``"output": null`` and an ``"error"`` naming the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tastebud.errors import InvalidInput

JobKind = Literal["recommend", "segment"]
LineKind = Literal["user", "rank", "item", "attributes"]

_FIELDS: dict[str, tuple[str, ...]] = {
    "recommend": ("userId", "itemId", "itemList", "filterValues", "context"),
    "segment": ("itemId", "itemAttributes", "filterValues"),
}
MAX_LINE_BYTES = 1 << 20
_CLAUSE = re.compile(
    r'^\s*(?:items\.)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"([^"]*)"|(\S+))\s*$', re.I
)


@dataclass(frozen=True, slots=True)
class LineRequest:
    """One parsed input line."""

    user_id: str | None = None
    item_id: str | None = None
    item_list: tuple[str, ...] | None = None
    attributes: tuple[str, ...] | None = None  # ("GENRES=Comedy", …): items with all of them
    filter_values: Mapping[str, Any] | None = None
    context: Mapping[str, str] | None = None

    @property
    def kind(self) -> LineKind:
        if self.attributes is not None:
            return "attributes"
        if self.user_id is None:
            return "item"
        return "user" if self.item_list is None else "rank"


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """What an output line repeats as its ``input`` (the object, or the raw text when it is
    not a JSON object), and the request or the reason there is none."""

    echo: Any
    request: LineRequest | None
    error: str | None = None


def parse_line(text: str | bytes, kind: JobKind) -> ParsedLine:
    """Parse one input line; problems come back as the line's ``error``, never raised."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if len(raw) > MAX_LINE_BYTES:
        return ParsedLine(raw[:200] + "…", None, f"line longer than {MAX_LINE_BYTES} bytes")
    if not raw.strip():
        return ParsedLine("", None, "empty line")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return ParsedLine(raw.rstrip("\r\n"), None, f"invalid JSON: {error}")
    if not isinstance(body, dict):
        return ParsedLine(body, None, f"expected a JSON object, got {type(body).__name__}")
    try:
        request = _recommend(body) if kind == "recommend" else _segment(body)
    except InvalidInput as error:
        return ParsedLine(body, None, error.message)
    return ParsedLine(body, request)


def output_line(echo: Any, output: Mapping[str, Any] | None, error: str | None) -> bytes:
    return orjson.dumps({"input": echo, "output": output, "error": error}) + b"\n"


def _recommend(body: dict[str, Any]) -> LineRequest:
    _known_fields(body, "recommend")
    user_id, item_id = _id(body, "userId"), _id(body, "itemId")
    if (user_id is None) == (item_id is None):
        raise InvalidInput("give exactly one of userId or itemId")
    item_list = None
    if "itemList" in body:
        if user_id is None:
            raise InvalidInput("itemList: ranking needs a userId")
        item_list = _item_list(body["itemList"])
    context = None
    if "context" in body:
        context = _string_map(body["context"], "context")
    return LineRequest(user_id=user_id, item_id=item_id, item_list=item_list,
                       filter_values=_filter_values(body), context=context)  # fmt: skip


def _segment(body: dict[str, Any]) -> LineRequest:
    _known_fields(body, "segment")
    item_id = _id(body, "itemId")
    attributes = None
    if "itemAttributes" in body:
        attributes = parse_attributes(body["itemAttributes"])
    if (item_id is None) == (attributes is None):
        raise InvalidInput("give exactly one of itemId or itemAttributes")
    return LineRequest(item_id=item_id, attributes=attributes, filter_values=_filter_values(body))


def parse_attributes(expression: object) -> tuple[str, ...]:
    """``GENRES = "Comedy" AND Items.YEAR = "1999"`` as ``("GENRES=Comedy", "YEAR=1999")``."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput(
            f'itemAttributes: expected text like GENRES = "Comedy", got {expression!r}'
        )
    clauses = []
    for clause in re.split(r"\s+AND\s+", expression.strip(), flags=re.I):
        match = _CLAUSE.match(clause)
        if match is None:
            raise InvalidInput(f'itemAttributes: cannot read {clause!r}; write FIELD = "value"')
        value = match.group(2) if match.group(2) is not None else match.group(3)
        clauses.append(f"{match.group(1).upper()}={value}")
    return tuple(clauses)


def _known_fields(body: Mapping[str, Any], kind: JobKind) -> None:
    allowed = _FIELDS[kind]
    for name in body:
        if name not in allowed:
            raise InvalidInput(f"unknown field {name!r} (expected {', '.join(allowed)})")


def _id(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise InvalidInput(f"{name}: expected a non-empty string, got {value!r}")
    return str(value)


def _item_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"itemList: expected a non-empty list of item ids, got {value!r}")
    if not all(isinstance(item, str) and item for item in value):
        raise InvalidInput("itemList: every entry must be a non-empty string")
    return tuple(value)


def _string_map(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: expected an object, got {value!r}")
    if not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise InvalidInput(f"{name}: values must be strings or numbers")
    return {str(k): str(v) for k, v in value.items()}


def _filter_values(body: Mapping[str, Any]) -> dict[str, Any] | None:
    value = body.get("filterValues")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"filterValues: expected an object, got {value!r}")
    for key, given in value.items():
        ok = isinstance(given, str) or (
            isinstance(given, list) and all(isinstance(v, str) for v in given)
        )
        if not ok:
            raise InvalidInput(f"filterValues.{key}: expected a string or a list of strings")
    return dict(value)
