"""Which outcomes an experiment caused: events joined to the exposures that led to them.

Computed at report time from what the store holds (exposures and interactions), so the same
data always give the same report, and a report can be run again at any time:

1. An event whose ``RECOMMENDATION_ID`` is an exposure's belongs to that exposure's arm, when
   it is the same user's.
2. An event without one belongs to the user's latest exposure at or before it (whole seconds,
   the events' resolution), when that exposure is at most ``window`` seconds older.
3. Anything else is not the experiment's: another user's answer, an answer of another
   campaign or experiment, an event before the first exposure or past the window.
"""

from __future__ import annotations

import polars as pl

OUTCOME_COLUMNS = ("user_id", "arm", "timestamp", "event_value", "rule")


def attribute(exposures: pl.DataFrame, events: pl.DataFrame, *, window: int) -> pl.DataFrame:
    """Attributed events: ``user_id, arm, timestamp, event_value, rule`` (``rule`` is
    ``recommendation_id`` or ``window``).

    Args:
        exposures: ``arm, user_id, recommendation_id, timestamp`` (epoch seconds, float).
        events: ``user_id, timestamp, event_value, recommendation_id``.
        window: seconds after an exposure during which an event without a recommendation id
            is attributed to it.
    """
    # A recommendation id repeats only for one user's cached answer: the same arm each time.
    produced = exposures.unique("recommendation_id", keep="any").select(
        "recommendation_id", pl.col("user_id").alias("exposed_user"), "arm"
    )
    by_id = (
        events.filter(pl.col("recommendation_id").is_not_null())
        .join(produced, on="recommendation_id", how="inner")
        .filter(pl.col("user_id") == pl.col("exposed_user"))
        .select(
            "user_id", "arm", "timestamp", "event_value", pl.lit("recommendation_id").alias("rule")
        )
    )
    seen = exposures.select(
        "user_id", "arm", pl.col("timestamp").floor().cast(pl.Int64).alias("exposed_at")
    ).sort("exposed_at")
    by_window = (
        events.filter(pl.col("recommendation_id").is_null())
        .select("user_id", pl.col("timestamp").cast(pl.Int64), "event_value")
        .sort("timestamp")
        .join_asof(seen, left_on="timestamp", right_on="exposed_at", by="user_id",
                   strategy="backward", tolerance=window,
                   check_sortedness=False)  # sorted by time overall, so within each user too
        .filter(pl.col("arm").is_not_null())
        .select("user_id", "arm", "timestamp", "event_value", pl.lit("window").alias("rule"))
    )  # fmt: skip
    return pl.concat([by_id.cast({"timestamp": pl.Int64}), by_window])


def per_user(exposures: pl.DataFrame, outcomes: pl.DataFrame) -> pl.DataFrame:
    """One row per exposed user: ``user_id, arm, exposures, first_exposed, events, value,
    converted`` (users without outcomes have 0 events and value 0)."""
    users = exposures.group_by("user_id", "arm").agg(
        pl.len().alias("exposures"), pl.col("timestamp").min().alias("first_exposed")
    )
    done = outcomes.group_by("user_id", "arm").agg(
        pl.len().alias("events"), pl.col("event_value").fill_null(0.0).sum().alias("value")
    )
    return (
        users.join(done, on=["user_id", "arm"], how="left")
        .with_columns(pl.col("events").fill_null(0), pl.col("value").fill_null(0.0))
        .with_columns((pl.col("events") > 0).alias("converted"))
        .sort("user_id")
    )
