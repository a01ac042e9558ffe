"""Point-in-time training frames: label rows joined with feature values as of each row's time.

Values come from the interactions table through :func:`tastebud.features.compute.values_at`,
never from the online store, so a frame of last month is what the features said last month:
only events strictly before a row's ``TIMESTAMP`` count (the label's own event included in
nothing), and a batch feature takes the computation its schedule made before that time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from tastebud.errors import InvalidInput
from tastebud.features import compute, sync
from tastebud.features.spec import FeatureSet, RequestSpec
from tastebud.store import Store

LABEL_COLUMNS = ("USER_ID", "ITEM_ID", "TIMESTAMP")


def read_labels(path: Path) -> pl.DataFrame:
    """Label rows from a CSV or Parquet file (USER_ID, ITEM_ID, TIMESTAMP, LABEL …)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidInput(f"{path}: labels are read from .csv or .parquet")
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, schema_overrides={"USER_ID": pl.String, "ITEM_ID": pl.String})


def write_frame(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.write_parquet(path)
    elif path.suffix.lower() == ".csv":
        frame.write_csv(path)
    else:
        raise InvalidInput(f"{path}: frames are written to .csv or .parquet")


def _check(labels: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise InvalidInput(f"labels: missing column(s) {', '.join(missing)}")
    try:
        return labels.with_columns(
            pl.col("USER_ID").cast(pl.String), pl.col("ITEM_ID").cast(pl.String),
            pl.col("TIMESTAMP").cast(pl.Int64),
        )  # fmt: skip
    except pl.exceptions.InvalidOperationError as exc:
        raise InvalidInput(f"labels.TIMESTAMP: expected epoch seconds ({exc})") from None


def values(
    store: Store, group: str, features: FeatureSet, labels: pl.DataFrame, columns: Sequence[str]
) -> np.ndarray:
    """The feature matrix of ``labels``: float32 ``(rows, columns)``."""
    labels = _check(labels)
    state = sync.GroupState(features=features)
    sync.refresh_items(store, group, state, now=0.0)
    events = store.feature_events(group).drop("seq", "context")
    events = compute.with_fields(events, state.items, features.fields)
    context = sorted({spec.field for c in columns
                      if isinstance(spec := features.column_of[c][0], RequestSpec)
                      and spec.field is not None})  # fmt: skip
    queries = labels.select(
        pl.col("USER_ID").alias("user"), pl.col("ITEM_ID").alias("item"),
        pl.col("TIMESTAMP").alias("t"),
        *(pl.col(f).cast(pl.String).alias(f"ctx:{f}") for f in context if f in labels.columns),
    )  # fmt: skip
    return compute.values_at(features, columns, events, state.items, queries)


def frame(
    store: Store, group: str, features: FeatureSet, labels: pl.DataFrame, columns: Sequence[str]
) -> pl.DataFrame:
    matrix = values(store, group, features, labels, columns)
    table = pl.DataFrame({c: matrix[:, j] for j, c in enumerate(columns)})
    return pl.concat([_check(labels), table], how="horizontal")


def labels_from_store(store: Store, group: str) -> pl.DataFrame:
    """Interactions as positives (LABEL 1) and the impressions shown with them but not chosen
    as negatives (LABEL 0), at the interaction's time, with its context fields."""
    chunks = list(store.export(group, "interactions"))
    if not chunks:
        return pl.DataFrame(schema={"USER_ID": pl.String, "ITEM_ID": pl.String,
                                    "TIMESTAMP": pl.Int64, "LABEL": pl.Int8})  # fmt: skip
    events = pl.concat(chunks, how="diagonal_relaxed").filter(pl.col("USER_ID").is_not_null())
    drop = ["EVENT_ID", "RECOMMENDATION_ID", "IMPRESSION", "EVENT_VALUE", "SESSION_ID"]
    keep = [c for c in events.columns if c not in drop]
    positives = events.select(*keep, pl.lit(1, pl.Int8).alias("LABEL"))
    shown = (
        events.filter(pl.col("IMPRESSION").is_not_null())
        .with_columns(pl.col("IMPRESSION").str.split("|").alias("SHOWN"))
        .explode("SHOWN")
        .filter(pl.col("SHOWN") != pl.col("ITEM_ID"))
        .with_columns(pl.col("SHOWN").alias("ITEM_ID"))
        .select(*keep, pl.lit(0, pl.Int8).alias("LABEL"))
        .unique(subset=["USER_ID", "ITEM_ID", "TIMESTAMP"], keep="first", maintain_order=True)
    )
    return pl.concat([positives, shown]).sort("TIMESTAMP", "USER_ID", maintain_order=True)
