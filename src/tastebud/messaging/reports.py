"""Reports: sends, deliveries, opens and clicks per campaign, activity and treatment.

Unique counts are messages; a rate is the share of sent messages that were delivered,
opened or clicked, so it can never exceed 1 (an open of a message whose send was never
recorded counts in the opens, not in the rate). Likely machine opens and clicks count in the
totals only. Treatments are compared with a two-proportion z-test on the open and click rates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tastebud.store import DeliveryRecord, EngagementCount


@dataclass
class _Tally:
    sends: set[str] = field(default_factory=set)
    deliveries: set[str] = field(default_factory=set)
    opens: set[str] = field(default_factory=set)
    clicks: set[str] = field(default_factory=set)
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, count: EngagementCount) -> None:
        self.totals[count.category] += count.total
        unique = {"send": self.sends, "delivery": self.deliveries, "open": self.opens,
                  "click": self.clicks}.get(count.category)  # fmt: skip
        if unique is not None and (count.human or count.category in ("send", "delivery")):
            unique.add(count.message_key)

    def row(self) -> dict[str, Any]:
        sent = len(self.sends)

        def rate(hits: set[str]) -> float | None:
            return len(hits & self.sends) / sent if sent else None

        return {
            "sends": sent,
            "deliveries": len(self.deliveries),
            "opens": {"unique": len(self.opens), "total": self.totals["open"]},
            "clicks": {"unique": len(self.clicks), "total": self.totals["click"]},
            "bounces": self.totals["bounce"], "complaints": self.totals["complaint"],
            "unsubscribes": self.totals["unsubscribe"], "failures": self.totals["failure"],
            "rates": {"delivery": rate(self.deliveries), "open": rate(self.opens),
                      "click": rate(self.clicks)},
            "_opened": len(self.opens & self.sends), "_clicked": len(self.clicks & self.sends),
        }  # fmt: skip


def build_report(
    campaign: str, counts: Iterable[EngagementCount], deliveries: Sequence[DeliveryRecord] = ()
) -> dict[str, Any]:
    """The report of one campaign (a message's name, or a journey id)."""
    total = _Tally()
    by_activity: defaultdict[str, _Tally] = defaultdict(_Tally)
    by_treatment: defaultdict[str, _Tally] = defaultdict(_Tally)
    for count in counts:
        total.add(count)
        by_activity[count.activity].add(count)
        by_treatment[count.treatment].add(count)
    treatments = {name: tally.row() for name, tally in sorted(by_treatment.items())}
    report = {
        "campaign": campaign,
        "total": _public(total.row()),
        "activities": {name: _public(t.row()) for name, t in sorted(by_activity.items())},
        "treatments": {name: _public(row) for name, row in treatments.items()},
        "comparison": _compare(treatments),
    }
    if deliveries:
        report["deliveries"] = _deliveries(deliveries)
    return report


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _deliveries(deliveries: Sequence[DeliveryRecord]) -> dict[str, Any]:
    status: dict[str, int] = defaultdict(int)
    fallbacks: list[dict[str, Any]] = []
    for delivery in deliveries:
        status[delivery.status] += 1
        detail = delivery.detail or {}
        if detail.get("fallback"):
            fallbacks.append({"user": delivery.user_id, "reasons": detail["fallback"]})
    return {"status": dict(sorted(status.items())), "llm_drafts_replaced": len(fallbacks),
            "replaced": fallbacks[:20]}  # fmt: skip


def _compare(treatments: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each treatment against the first (``default`` when there is one)."""
    names = sorted(treatments, key=lambda t: (t != "default", t))
    if len(names) < 2:
        return []
    base = treatments[names[0]]
    rows = []
    for name in names[1:]:
        row = treatments[name]
        entry: dict[str, Any] = {"treatment": name, "against": names[0]}
        for metric, hits in (("open", "_opened"), ("click", "_clicked")):
            entry[metric] = _z_test(base[hits], base["sends"], row[hits], row["sends"])
        rows.append(entry)
    return rows


def _z_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> dict[str, float | None]:
    if not n_a or not n_b:
        return {"difference": None, "p_value": None}
    p_a, p_b = hits_a / n_a, hits_b / n_b
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p_value = 1.0 if spread == 0 else math.erfc(abs(p_b - p_a) / spread / math.sqrt(2))
    return {"difference": p_b - p_a, "p_value": p_value}
