"""What the console's pages show, gathered from the engine's services (the ones the HTTP API
calls): the pages render it, nothing here decides anything the API does not.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from tastebud.api.routes.recommendations import items_answer
from tastebud.api.routes.reels import check_clip_count
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tastebud.ingest import PutEventsRequest
from tastebud.reels import ReelRequest, parse_catalogue, parse_fps
from tastebud.reels.timeline import otio_json
from tastebud.serving import VersionRef
from tastebud.serving.campaigns import CampaignRequest
from tastebud.serving.versions import version_folder
from tastebud.store import SolutionVersionRecord

T = TypeVar("T")
PER_PAGE = 20
CHART_METRICS = ("ndcg@10", "hr@10")
MAX_ANSWER_ITEMS = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a long list (1-based ``number``)."""

    rows: list[T]
    number: int
    pages: int
    total: int


def paginate(rows: Sequence[T], page: int | str | None, per_page: int = PER_PAGE) -> Page[T]:
    """Page ``page`` of ``rows``; a number past the end shows the last page."""
    try:
        number = max(1, int(page or 1))
    except ValueError:
        raise InvalidInput(f"page: expected a page number, got {page!r}") from None
    pages = max(1, math.ceil(len(rows) / per_page))
    number = min(number, pages)
    start = (number - 1) * per_page
    return Page(list(rows[start : start + per_page]), number, pages, len(rows))


# solutions ----------------------------------------------------------------------------------
def versions_chart(versions: Sequence[SolutionVersionRecord]) -> dict[str, Any]:
    """Oldest first, the versions with metrics: their ids and each chart metric (None where a
    version lacks it), the data of the comparison chart."""
    measured = [v for v in reversed(versions) if v.body.get("metrics")]
    series = {
        name: [_number(v.body["metrics"].get(name)) for v in measured] for name in CHART_METRICS
    }
    return {"versions": [v.id for v in measured], "series": series}


def training_curve(artifacts: Path, version: SolutionVersionRecord) -> list[dict[str, float]]:
    """The epochs a recipe recorded while fitting the version (the sequential recipe writes
    ``training.curve`` to its model file: loss, validation NDCG@10, seconds); empty when the
    recipe records none or the version has no artifacts here."""
    path = version_folder(artifacts, version.id) / "model" / "model.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    training = meta.get("training") if isinstance(meta, dict) else None
    curve = training.get("curve") if isinstance(training, dict) else None
    return [dict(epoch) for epoch in curve] if isinstance(curve, list) else []


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# try it -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ask:
    """What *Try it* asks: a campaign or a solution, for a user and/or like an item."""

    target: str  # "campaign" or "solution"
    name: str
    user_id: str | None = None
    item_id: str | None = None
    k: int = 10
    filter_name: str | None = None
    filter_values: dict[str, str] | None = None
    explain: bool = True

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Ask:
        """Read the form; the message names the field that is wrong."""
        target = form.get("target", "campaign")
        if target not in ("campaign", "solution"):
            raise InvalidInput(f"target: expected 'campaign' or 'solution', got {target!r}")
        name = form.get("name", "").strip()
        if not name:
            raise InvalidInput(f"name: give the {target}'s name")
        user, item = _blank(form.get("user_id")), _blank(form.get("item_id"))
        if user is None and item is None:
            raise InvalidInput("user_id, item_id: give a user, an item or both")
        try:
            k = int(form.get("k") or 10)
        except ValueError:
            raise InvalidInput(f"k: expected a number, got {form.get('k')!r}") from None
        if not 1 <= k <= MAX_ANSWER_ITEMS:
            raise InvalidInput(f"k: expected 1 to {MAX_ANSWER_ITEMS}, got {k}")
        return cls(
            target, name, user, item, k, _blank(form.get("filter")),
            filter_values(form.get("filter_values", "")), explain=bool(form.get("explain")),
        )  # fmt: skip


def filter_values(text: str) -> dict[str, str] | None:
    """``GENRES=Comedy,Drama; TIER=gold`` -> the request's ``filterValues``."""
    values: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"filter_values: {pair!r}: expected KEY=VALUE (pairs split by ;)")
        values[key.strip()] = value.strip()
    return values or None


@dataclass(frozen=True)
class AnswerRow:
    rank: int
    item_id: str
    title: str | None
    fields: dict[str, Any]
    score: float | None
    reasons: list[dict[str, Any]]
    promotion: str | None = None


@dataclass(frozen=True)
class AnswerView:
    ask: Ask
    source: str
    version_id: str | None
    recommendation_id: str
    cache: str | None
    rows: list[AnswerRow] = field(default_factory=list)


def answer(engine: Engine, group: str, ask: Ask) -> AnswerView:
    """Ask the campaign (as ``POST …/campaigns/{name}/recommendations`` does) or the solution
    (as ``…/recommendations`` or ``…/similar-items`` do), then add each item's fields."""
    if ask.target == "campaign":
        request = CampaignRequest(
            user_id=ask.user_id, item_id=ask.item_id, k=ask.k, filter_name=ask.filter_name,
            filter_values=ask.filter_values, explain=ask.explain,
        )  # fmt: skip
        body = engine.campaign_answer(group, ask.name, request)
    else:
        ref: VersionRef = {"solution": ask.name, "version_id": None}
        if ask.item_id is not None:
            found = engine.recommender.similar_items(
                group, ref, item_id=ask.item_id, k=ask.k, user_id=ask.user_id,
                filter_name=ask.filter_name, filter_values=ask.filter_values,
            )  # fmt: skip
        else:
            found = engine.recommender.recommend(
                group, ref, user_id=ask.user_id, k=ask.k, filter_name=ask.filter_name,
                filter_values=ask.filter_values, explain=ask.explain,
            )  # fmt: skip
        body = {**items_answer(found), "source": "model"}
    return AnswerView(
        ask, str(body.get("source", "model")), body.get("solutionVersionId"),
        str(body.get("recommendationId", "")), body.get("cache"),
        _rows(engine, group, body.get("itemList", [])),
    )  # fmt: skip


def _rows(engine: Engine, group: str, items: Sequence[Mapping[str, Any]]) -> list[AnswerRow]:
    title_field = _title_field(engine, group)
    rows = []
    for rank, item in enumerate(items, start=1):
        title, fields = _item_fields(engine, group, str(item["itemId"]), title_field)
        rows.append(AnswerRow(
            rank, str(item["itemId"]), title, fields, item.get("score"),
            list(item.get("reasons") or []), item.get("promotionName"),
        ))  # fmt: skip
    return rows


def _item_fields(
    engine: Engine, group: str, item_id: str, title_field: str | None
) -> tuple[str | None, dict[str, Any]]:
    """The item's title (None: no title field, or an item without fields) and other fields."""
    record = engine.store.get_item(group, item_id)
    fields = dict(record.fields) if record is not None else {}
    title = fields.pop(title_field, None) if title_field else None
    return (None if title is None else str(title)), fields


def _title_field(engine: Engine, group: str) -> str | None:
    """The items' ``TITLE`` (or ``NAME``) field, else their first textual one."""
    types = engine.get_schema(group, "items").types
    for name in ("TITLE", "NAME"):
        if name in types:
            return name
    return next((name for name, kind in types.items() if kind == "textual"), None)


def send_event(engine: Engine, group: str, form: Mapping[str, str]) -> int:
    """Send one event from the page through the event tracker (as ``POST …/events``)."""
    user, item = _blank(form.get("user_id")), _blank(form.get("event_item_id"))
    if user is None:
        raise InvalidInput("user_id: an event needs the user who acts")
    if item is None:
        raise InvalidInput("event_item_id: give the item the user acted on")
    event: dict[str, Any] = {"itemId": item, "sentAt": time.time()}
    if event_type := _blank(form.get("event_type")):
        event["eventType"] = event_type
    request = PutEventsRequest.model_validate({"userId": user, "eventList": [event]})
    return engine.put_events(group, request).accepted


# reels -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReelView:
    """A composed reel: its edit list (as ``POST …/reels`` answers), the OTIO timeline's
    text, and each title's name for the page."""

    edits: dict[str, Any]
    timeline: str
    titles: dict[str, str | None]


def compose_reel(engine: Engine, group: str, form: Mapping[str, str]) -> ReelView:
    """Compose the reel the form asks for (as ``POST …/reels`` does), the clip catalogue
    pasted as CSV or JSON."""
    solution, user = _blank(form.get("solution")), _blank(form.get("user_id"))
    if solution is None:
        raise InvalidInput("solution: give the solution that ranks the titles")
    if user is None:
        raise InvalidInput("user_id: a reel is made for one user")
    if _blank(form.get("clips")) is None:
        raise InvalidInput("clips: paste the clip catalogue (CSV with a header, or JSON)")
    catalogue = parse_catalogue(form["clips"], name="clips",
                                fps=parse_fps(form.get("fps") or "25"))  # fmt: skip
    check_clip_count(len(catalogue.clips))
    try:
        seconds = float(form.get("seconds") or 30)
    except ValueError:
        raise InvalidInput(f"seconds: expected a number, got {form.get('seconds')!r}") from None
    request = ReelRequest(
        user_id=user, catalogue=catalogue, seconds=seconds, cadence=_blank(form.get("cadence")),
        filter_name=_blank(form.get("filter")),
        filter_values=filter_values(form.get("filter_values", "")),
    )  # fmt: skip
    reel = engine.reels.compose(group, {"solution": solution}, request)
    title_field = _title_field(engine, group)
    titles = {t: _item_fields(engine, group, t, title_field)[0] for t in reel.plan.titles}
    return ReelView(reel.edit_list(), otio_json(reel.plan), titles)


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def rejects_file(home: Path, result: Mapping[str, Any] | None) -> Path:
    """The rejects file an import job's result names, when it lies in ``home/rejects``."""
    named = (result or {}).get("rejects_file")
    if not named:
        raise NotFound("this job wrote no rejects file")
    path = Path(str(named)).resolve()
    if path.parent != (home / "rejects").resolve() or not path.is_file():
        raise NotFound(f"rejects file {path.name!r} is not in {home / 'rejects'} (any more)")
    return path
