"""An experiment's report: per arm users, exposures, conversions, rates and values, each
treatment's lift over the control with its interval and p-value, the sample-ratio check and
the CUPED-adjusted lifts (definitions in docs/experiments.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tastebud.experiments.attribution import attribute, per_user
from tastebud.experiments.spec import ExperimentSpec
from tastebud.experiments.statistics import (
    FloatArray,
    cuped,
    mean_comparison,
    proportion_comparison,
    sample_ratio,
)
from tastebud.store import ExperimentRecord


def build_report(
    record: ExperimentRecord, spec: ExperimentSpec, exposures: pl.DataFrame,
    events: pl.DataFrame, before: pl.DataFrame | None,
) -> dict[str, Any]:  # fmt: skip
    """The report (JSON-able, snake_case keys).

    Args:
        exposures: the experiment's exposures (``Store.read_exposures``).
        events: outcome events from its start to its end plus the window.
        before: outcome events of the same length of time before its start (CUPED's
            covariate), or None to leave CUPED out.
    """
    outcomes = attribute(exposures, events, window=spec.attribution_window)
    users = per_user(exposures, outcomes)
    if before is not None:
        counts = before.group_by("user_id").agg(pl.len().alias("before"))
        users = users.join(counts, on="user_id", how="left").with_columns(
            pl.col("before").fill_null(0)
        )
    arms = [_arm_row(spec, arm.name, users) for arm in spec.arms]
    control = spec.control.name
    for row in arms:
        if row["arm"] != control:
            row["vs_control"] = _compare(users, control, row["arm"])
    rules = outcomes.group_by("rule").len()
    by_rule = dict(zip(rules["rule"].to_list(), rules["len"].to_list(), strict=True))
    report: dict[str, Any] = {
        "experiment": record.name,
        "state": record.state,
        "metric": spec.metric,
        "attribution_window_seconds": spec.attribution_window,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
        "control": control,
        "arms": arms,
        "sample_ratio": sample_ratio([r["users"] for r in arms], [a.weight for a in spec.arms]),
        "attributed_events": {
            "by_recommendation_id": int(by_rule.get("recommendation_id", 0)),
            "by_window": int(by_rule.get("window", 0)),
            "considered": events.height,
        },
    }
    if before is not None:
        report["cuped"] = _cuped(users, spec)
    return report


def _arm_row(spec: ExperimentSpec, arm: str, users: pl.DataFrame) -> dict[str, Any]:
    mine = users.filter(pl.col("arm") == arm)
    n = mine.height
    conversions = int(mine["converted"].sum())
    declared = next(a for a in spec.arms if a.name == arm)
    return {
        "arm": arm,
        "campaign": declared.campaign,
        "weight": declared.weight,
        "users": n,
        "exposures": int(mine["exposures"].sum()),
        "conversions": conversions,
        "events": int(mine["events"].sum()),
        "conversion_rate": conversions / n if n else None,
        "mean_value": float(mine["value"].mean()) if n else None,  # type: ignore[arg-type]
        "events_per_user": float(mine["events"].mean()) if n else None,  # type: ignore[arg-type]
    }


def _values(users: pl.DataFrame, arm: str, column: str) -> FloatArray:
    return users.filter(pl.col("arm") == arm)[column].cast(pl.Float64).to_numpy()


def _compare(users: pl.DataFrame, control: str, treatment: str) -> dict[str, Any]:
    conv_c, conv_t = _values(users, control, "converted"), _values(users, treatment, "converted")
    return {
        "conversion_rate": proportion_comparison(
            int(conv_c.sum()), conv_c.size, int(conv_t.sum()), conv_t.size
        ),
        "mean_value": mean_comparison(
            _values(users, control, "value"), _values(users, treatment, "value")
        ),
    }


def _cuped(users: pl.DataFrame, spec: ExperimentSpec) -> dict[str, Any]:
    """Lifts of the conversion rate and the mean value with the pre-experiment event count
    as covariate (θ pooled over the arms, so it cannot favour one)."""
    covariate = users["before"].cast(pl.Float64).to_numpy()
    found: dict[str, Any] = {"covariate": "outcome events in the same length of time before "
                             "the start", "metrics": {}}  # fmt: skip
    arms = users["arm"].to_numpy()
    control = spec.control.name
    for metric, column in (("conversion_rate", "converted"), ("mean_value", "value")):
        adjusted, theta, reduction = cuped(users[column].cast(pl.Float64).to_numpy(), covariate)
        comparisons = {
            arm.name: mean_comparison(adjusted[arms == control], adjusted[arms == arm.name])
            for arm in spec.arms
            if arm.name != control
        }
        found["metrics"][metric] = {"theta": theta, "variance_reduction": reduction,
                                    "vs_control": comparisons}  # fmt: skip
    found["users_with_history"] = int(np.count_nonzero(covariate))
    return found
