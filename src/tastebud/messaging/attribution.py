"""Which campaign (or journey), activity and treatment an app's engagement event belongs to.

Apps report attribution two ways, and both must name the same campaign:

- Android-style flat keys: ``{"campaign_id": "c1", "campaign_activity_id": "a1",
  "treatment_id": "0"}``, also prefixed (``"pinpoint.campaign.campaign_id"``);
- iOS-style nested payloads: ``{"data": {"pinpoint": {"campaign": {"campaign_id": "c1", …}}}}``.

Keys are matched by their last segment, case and punctuation aside (``campaignId`` and
``campaign_id`` are the same key).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

_KEYS = {
    "messageid": "message_id", "campaignid": "campaign", "campaignactivityid": "activity",
    "activityid": "activity", "treatmentid": "treatment", "journeyid": "journey",
    "journeyactivityid": "journey_activity", "url": "url", "link": "url",
}  # fmt: skip
_PUNCTUATION = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where an engagement event is counted. ``campaign`` holds the journey id for journeys."""

    kind: Literal["campaign", "journey"]
    campaign: str
    activity: str = ""
    treatment: str = ""
    message_id: str | None = None
    url: str | None = None


def split_attribution(
    properties: Mapping[str, Any] | None,
) -> tuple[Attribution | None, dict[str, Any]]:
    """The attribution in ``properties`` (None when they name no campaign or journey), and
    the properties left once attribution keys and nested payloads are taken out (the
    context fields the interactions schema validates)."""
    if not properties:
        return None, {}
    found: dict[str, str] = {}
    rest: dict[str, Any] = {}
    for key, value in properties.items():
        if isinstance(value, Mapping):
            found.update(_attribution_keys(value))
            continue
        name = _KEYS.get(_normal(key))
        if name is None:
            rest[key] = value
        elif value is not None:
            found[name] = str(value)
    return _attribution(found), rest


def _attribution_keys(payload: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in payload.items():
        if isinstance(value, Mapping):
            yield from _attribution_keys(value)
        elif value is not None and (name := _KEYS.get(_normal(key))) is not None:
            yield name, str(value)


def _normal(key: str) -> str:
    return _PUNCTUATION.sub("", key.rsplit(".", 1)[-1].lower())


def _attribution(found: Mapping[str, str]) -> Attribution | None:
    if "journey" in found:
        return Attribution(
            kind="journey", campaign=found["journey"], activity=found.get("journey_activity", ""),
            message_id=found.get("message_id"), url=found.get("url"),
        )  # fmt: skip
    if "campaign" in found:
        return Attribution(
            kind="campaign", campaign=found["campaign"], activity=found.get("activity", ""),
            treatment=found.get("treatment", ""), message_id=found.get("message_id"),
            url=found.get("url"),
        )  # fmt: skip
    return None
