"""Metric attributions, in the managed service's sense: a metric over events of one type
(``SAMPLECOUNT()`` or ``SUM(Items.FIELD)``) reported per recommendation source.

An event counts when its ``RECOMMENDATION_ID`` names a logged answer; it is grouped by that
answer's campaign, its serving source (``model``, ``rules``, ``precomputed``), the experiment
arm that gave it (when an experiment did) and the promotion that placed the event's item in
it (``none`` for the regular items). Campaign answers are logged only while the group has a
metric attribution (:meth:`MetricAttributions.log_answer`), so the request path of other groups
pays a dictionary look-up.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from tastebud.errors import InvalidInput
from tastebud.experiments.log import BufferedLog
from tastebud.experiments.spec import check_name
from tastebud.schema import DatasetSchema
from tastebud.store import AnswerRecord, MetricAttributionRecord, Store

CHECK_SECONDS = 5.0  # how long a process trusts "this group has metric attributions"
_SUM = re.compile(r"SUM\(\s*Items\.([A-Za-z_][A-Za-z0-9_]*)\s*\)", re.IGNORECASE)
_COUNT = re.compile(r"SAMPLECOUNT\(\s*\)", re.IGNORECASE)
NO_PROMOTION = "none"


@dataclass(frozen=True, slots=True)
class Expression:
    """``field`` None: count events; else sum the items' numerical ``field``."""

    field: str | None

    @property
    def text(self) -> str:
        return "SAMPLECOUNT()" if self.field is None else f"SUM(Items.{self.field})"


def parse_expression(text: str, items: DatasetSchema) -> Expression:
    """``SAMPLECOUNT()`` or ``SUM(Items.FIELD)`` with FIELD a numerical field of ``items``.

    Raises:
        InvalidInput: another expression, or FIELD missing or not numerical (named).
    """
    stripped = text.strip()
    if _COUNT.fullmatch(stripped):
        return Expression(None)
    match = _SUM.fullmatch(stripped)
    if match is None:
        raise InvalidInput(f"expression: expected SAMPLECOUNT() or SUM(Items.FIELD), got {text!r}")
    numerical = sorted(n for n, t in items.types.items() if t == "numerical")
    field = match.group(1)
    if items.types.get(field) != "numerical":
        known = "declared" if field in items.types else "not in the items schema"
        raise InvalidInput(
            f"expression: Items.{field} is {known}"
            + ("" if field not in items.types else f" as {items.types[field]}")
            + f"; SUM needs a numerical field (numerical fields: {', '.join(numerical) or 'none'})"
        )
    return Expression(field)


class MetricAttributions:
    """Metric attributions of every group of one store, and the campaign-answer log they
    read. Thread-safe."""

    def __init__(self, store: Store, answers: BufferedLog[AnswerRecord]) -> None:
        self.store = store
        self.answers = answers
        self._groups: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def create(
        self, group: str, name: str, *, event_type: str, expression: str
    ) -> MetricAttributionRecord:
        check_name(name, "metric attribution")
        if not event_type.strip():
            raise InvalidInput("event_type: give the event type the metric counts")
        items = self.store.get_schema(group, "items") or DatasetSchema.default("items")
        parsed = parse_expression(expression, items)
        record = MetricAttributionRecord(
            group=group, name=name, event_type=event_type, expression=parsed.text,
            created_at=time.time(),
        )  # fmt: skip
        self.store.put_metric_attribution(record)
        self._forget(group)
        return self.store.get_metric_attribution(group, name)

    def get(self, group: str, name: str) -> MetricAttributionRecord:
        return self.store.get_metric_attribution(group, name)

    def list(self, group: str) -> list[MetricAttributionRecord]:
        return self.store.list_metric_attributions(group)

    def delete(self, group: str, name: str) -> None:
        self.store.delete_metric_attribution(group, name)
        self._forget(group)

    # the request path -------------------------------------------------------------------------
    def log_answer(
        self, group: str, campaign: str, user_id: str | None, answer: Mapping[str, Any]
    ) -> None:
        """Log a computed campaign answer when the group has metric attributions (a cached
        answer repeats a recommendation id logged when it was computed)."""
        if answer.get("cache") == "hit" or not self._attributed(group):
            return
        items = answer.get("itemList") or []
        promoted = [i for i in items if i.get("promotionName")]
        self.answers.add(group, AnswerRecord(
            recommendation_id=str(answer["recommendationId"]), campaign=campaign,
            source=str(answer.get("source")), timestamp=time.time(),
            items="|".join(str(i["itemId"]) for i in items), user_id=user_id,
            promotion=str(promoted[0]["promotionName"]) if promoted else None,
            promoted_items="|".join(str(i["itemId"]) for i in promoted) or None,
        ))  # fmt: skip

    def _attributed(self, group: str) -> bool:
        now = time.monotonic()
        cached = self._groups.get(group)
        if cached is not None and now - cached[0] < CHECK_SECONDS:
            return cached[1]
        try:
            found = bool(self.store.list_metric_attributions(group))
        except Exception:  # an unknown group, the store down: answering matters more
            found = False
        with self._lock:
            self._groups[group] = (now, found)
        return found

    def _forget(self, group: str) -> None:
        with self._lock:
            self._groups.pop(group, None)

    # reports ----------------------------------------------------------------------------------
    def report(self, group: str, name: str, *, exposures: pl.DataFrame) -> dict[str, Any]:
        """The metric per campaign, serving source, experiment arm and promotion (JSON-able).

        Args:
            exposures: every exposure of the group (``Store.read_exposures``), for the arms.
        """
        record = self.store.get_metric_attribution(group, name)
        items = self.store.get_schema(group, "items") or DatasetSchema.default("items")
        expression = parse_expression(record.expression, items)
        self.answers.flush()
        events = self.store.read_outcomes(group, event_type=record.event_type, since=0,
                                          until=2**62, with_items=True)  # fmt: skip
        events = self._valued(group, events, expression)
        answers = self.store.read_answers(group)
        matched = events.join(answers.drop("user_id", "timestamp"), on="recommendation_id")
        arms = exposures.unique("recommendation_id", keep="any").select(
            "recommendation_id", "experiment", "arm"
        )
        by_arm = events.join(arms, on="recommendation_id")
        promotion = (
            pl.when(pl.col("promoted_items").str.split("|").list.contains(pl.col("item_id")))
            .then(pl.col("promotion"))
            .otherwise(pl.lit(NO_PROMOTION))
        )
        return {
            "metric": record.name,
            "event_type": record.event_type,
            "expression": record.expression,
            "events": events.height,
            "attributed": matched.height,
            "unattributed": events.height - matched.height,
            "by_campaign": _totals(matched, pl.col("campaign")),
            "by_source": _totals(matched, pl.col("source")),
            "by_experiment_arm": _totals(by_arm, pl.format("{}/{}", "experiment", "arm")),
            "by_promotion": _totals(matched.with_columns(promotion.alias("p")), pl.col("p")),
        }

    def _valued(self, group: str, events: pl.DataFrame, expression: Expression) -> pl.DataFrame:
        """Events with ``value``: 1 each (SAMPLECOUNT), or the item's field (missing: 0)."""
        if expression.field is None:
            return events.with_columns(pl.lit(1.0).alias("value"))
        frames = [chunk.select("ITEM_ID", expression.field) for chunk in
                  self.store.export(group, "items")]  # fmt: skip
        prices = (pl.concat(frames) if frames else pl.DataFrame(
            schema={"ITEM_ID": pl.String, expression.field: pl.Float64}))  # fmt: skip
        prices = prices.rename({"ITEM_ID": "item_id", expression.field: "value"})
        joined = events.join(prices.cast({"value": pl.Float64}), on="item_id", how="left")
        return joined.with_columns(pl.col("value").fill_null(0.0))


def _totals(frame: pl.DataFrame, key: pl.Expr) -> dict[str, dict[str, float]]:
    grouped = frame.group_by(key.alias("key")).agg(
        pl.len().alias("events"), pl.col("value").sum().alias("value")
    )
    return {
        str(row["key"]): {"events": int(row["events"]), "value": float(row["value"])}
        for row in grouped.sort("key").iter_rows(named=True)
    }
