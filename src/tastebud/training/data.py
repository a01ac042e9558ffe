"""Interactions and item files -> :class:`TrainingData` plus the id vocabularies.

Two entry points share the weighting code: :func:`build_training_data` for frames read from files
(external string ids) and :func:`training_data_from_indexed` for frames that already hold dense
indexes (the store's ``read_interactions``). Rows end up in time order, ties in input order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, field_validator

from tastebud.errors import InvalidInput
from tastebud.ids import Vocabulary
from tastebud.recipes.base import FloatArray, Int64Array, IntArray, TrainingData
from tastebud.schema import REQUIRED, RESERVED, DatasetKind, canonical_name, parse_timestamp
from tastebud.text.items import item_texts

_log = logging.getLogger(__name__)

# Read as text whatever their look: ids keep leading zeros, event types match the weights' keys,
# and timestamps may mix epoch seconds with ISO-8601 (converted by _epoch_seconds).
_TEXT_COLUMNS = (
    "USER_ID",
    "ITEM_ID",
    "EVENT_TYPE",
    "IMPRESSION",
    "TIMESTAMP",
    "CREATION_TIMESTAMP",
)
_INDEXED_COLUMNS = ("user_index", "item_index", "timestamp")
_EMPTY = np.zeros(0, np.int32)


class SolutionDataConfig(BaseModel):
    """Which interactions a solution trains on, and how much each counts.

    ``event_weights``: None uses every event type with weight 1; otherwise only the listed
    ``EVENT_TYPE`` values are used, each with its weight (> 0). ``min_event_value``: rows whose
    ``EVENT_VALUE`` is below it, or missing, are dropped.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_weights: dict[str, float] | None = None
    min_event_value: float | None = None

    @field_validator("event_weights")
    @classmethod
    def _positive(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        for event_type, weight in (weights or {}).items():
            if not weight > 0:  # also rejects nan
                raise ValueError(f"weight of event type {event_type!r} must be > 0, got {weight}")
        return weights


def read_table(path: Path, *, dataset: DatasetKind = "interactions") -> pl.DataFrame:
    """Read a ``.csv``, ``.csv.gz`` or ``.parquet`` file; id columns come back as strings.

    Reserved column names are matched case-insensitively and returned upper-case.

    Raises:
        InvalidInput: missing file, unknown suffix, unreadable content, or a required column
            (``USER_ID, ITEM_ID, TIMESTAMP`` for interactions, ``ITEM_ID`` for items) missing.
    """
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            frame = _read_csv(path, dataset)
        elif name.endswith(".parquet"):
            frame = pl.read_parquet(path)
        else:
            raise InvalidInput(f"{path}: unknown file type; expected .csv, .csv.gz or .parquet")
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{path}: cannot read the file ({reason})") from None
    frame = frame.rename({column: canonical_name(dataset, column) for column in frame.columns})
    missing = [column for column in REQUIRED[dataset] if column not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(frame.columns) or '(none)'}"
        )
    return _ids_as_text(frame)


def _read_csv(path: Path, dataset: DatasetKind) -> pl.DataFrame:
    header = pl.read_csv(path, n_rows=0).columns
    text = {
        column: pl.String for column in header if canonical_name(dataset, column) in _TEXT_COLUMNS
    }
    return pl.read_csv(path, schema_overrides=text, infer_schema_length=10_000)


def _ids_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    ids = [column for column in ("USER_ID", "ITEM_ID") if column in frame.columns]
    return frame.with_columns(pl.col(ids).cast(pl.String))


def build_training_data(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None = None,
    *,
    config: SolutionDataConfig = SolutionDataConfig(),
    item_categorical: Sequence[str] | None = None,
    item_textual: Sequence[str] = (),
    text_cache: Path | None = None,
) -> tuple[TrainingData, Vocabulary, Vocabulary]:
    """Turn an interactions frame (and optionally an items frame) into training arrays.

    Users and items get indexes in order of first appearance in ``interactions``; items found
    only in ``items`` (cold items) follow. Vocabularies hold every id, also those of rows that
    ``config`` drops. ``IMPRESSION`` (pipe-separated item ids) gives negatives: impressed items
    the user never interacted with. Item features are one-hot over ``item_categorical``, or,
    when None, over the string columns whose ``|``-split values number fewer than half the items.
    ``item_created`` comes from ``CREATION_TIMESTAMP`` (-1 where missing; None without the column).
    ``item_textual`` names the items' text columns, embedded on demand (vectors cached in
    ``text_cache``, see ``tastebud.text``).

    Returns:
        ``(data, users, items)``: the training data and the user and item vocabularies.

    Raises:
        InvalidInput: a required column missing, an empty id, a bad timestamp, an unknown
            categorical column, or no interactions left after ``config``'s filters.
    """
    frame = _checked(interactions, "interactions")
    item_frame = None if items is None else _checked(items, "items")
    users = Vocabulary(frame["USER_ID"].unique(maintain_order=True).to_list())
    item_ids = frame["ITEM_ID"].unique(maintain_order=True).to_list()
    if item_frame is not None:
        known = set(item_ids)
        item_ids += [i for i in item_frame["ITEM_ID"].unique(maintain_order=True) if i not in known]
    item_vocabulary = Vocabulary(item_ids)
    contexts = context_columns(frame)
    indexed = frame.select(
        pl.col(contexts).cast(pl.String),
        user_index=_index_of(pl.col("USER_ID"), users),
        item_index=_index_of(pl.col("ITEM_ID"), item_vocabulary),
        timestamp=_epoch_seconds(frame["TIMESTAMP"], "interactions.TIMESTAMP"),
        event_type=_optional(frame, "EVENT_TYPE", pl.String),
        event_value=_optional(frame, "EVENT_VALUE", pl.Float32),
    )
    negative_users, negative_items = (
        impression_negatives(frame["IMPRESSION"], indexed, item_vocabulary)
        if "IMPRESSION" in frame.columns
        else (_EMPTY, _EMPTY)
    )
    features, names = item_feature_matrix(item_frame, item_vocabulary, item_categorical)
    numbers, number_names = item_numeric_matrix(item_frame, item_vocabulary)
    data = training_data_from_indexed(
        indexed, n_users=len(users), n_items=len(item_vocabulary), config=config,
        item_features=features, feature_names=names,
        item_numbers=numbers, number_names=number_names,
        item_created=item_creation_times(item_frame, item_vocabulary),
        negative_users=negative_users, negative_items=negative_items, context_columns=contexts,
    )  # fmt: skip
    texts = item_texts(item_frame, item_vocabulary, item_textual, text_cache)
    data = dataclasses.replace(data, item_texts=texts)
    _log.info(
        "training data built users=%d items=%d interactions=%d negatives=%d features=%d "
        "event_types=%d contexts=%s",
        data.n_users, data.n_items, data.size, len(negative_users), len(names),
        len(data.event_type_names), ",".join(contexts) or "-",
    )  # fmt: skip
    return data, users, item_vocabulary


def training_data_from_indexed(
    frame: pl.DataFrame,
    *,
    n_users: int,
    n_items: int,
    config: SolutionDataConfig = SolutionDataConfig(),
    item_features: sp.csr_matrix | None = None,
    feature_names: tuple[str, ...] = (),
    item_created: Int64Array | None = None,
    negative_users: IntArray | None = None,
    negative_items: IntArray | None = None,
    context_columns: Sequence[str] = (),
    item_numbers: FloatArray | None = None,
    number_names: tuple[str, ...] = (),
) -> TrainingData:
    """Training data from a frame of dense indexes (``user_index, item_index, timestamp`` and
    optionally ``event_type, event_value``), applying ``config``'s filters and weights.

    Rows are sorted by ``timestamp``; ties keep the frame's order. Event types and values
    (when the columns hold any) and the ``context_columns`` (request context such as
    ``DEVICE``) travel with the rows as codes and floats.

    Raises:
        InvalidInput: a column missing, an index out of range, or no rows left after filters.
    """
    missing = [column for column in _INDEXED_COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidInput(f"interactions: missing column(s) {', '.join(missing)}")
    rows = _weighted(frame.drop_nulls(["user_index", "item_index", "timestamp"]), config)
    rows = rows.sort("timestamp", maintain_order=True)
    users = rows["user_index"].to_numpy().astype(np.int32)
    items = rows["item_index"].to_numpy().astype(np.int32)
    _check_range(users, n_users, "user_index")
    _check_range(items, n_items, "item_index")
    return TrainingData(
        users=users, items=items,
        timestamps=rows["timestamp"].to_numpy().astype(np.int64),
        weights=rows["weight"].to_numpy().astype(np.float32),
        n_users=n_users, n_items=n_items,
        item_features=item_features, feature_names=feature_names, item_created=item_created,
        negative_users=_EMPTY if negative_users is None else negative_users.astype(np.int32),
        negative_items=_EMPTY if negative_items is None else negative_items.astype(np.int32),
        item_numbers=item_numbers, number_names=number_names,
        **_event_columns(rows), **_context_codes(rows, context_columns),
    )  # fmt: skip


def _event_columns(rows: pl.DataFrame) -> dict[str, Any]:
    """``event_types`` (codes), ``event_type_names`` and ``values`` (NaN: none) of the rows, for
    the columns that hold at least one value."""
    columns: dict[str, Any] = {}
    types = rows.get_column("event_type", default=None)
    if types is not None and types.null_count() < len(types):
        names = tuple(sorted(types.drop_nulls().unique().to_list()))
        codes = types.replace_strict(names, list(range(len(names))), default=-1,
                                     return_dtype=pl.Int32)  # fmt: skip
        columns |= {"event_types": codes.to_numpy(), "event_type_names": names}
    values = rows.get_column("event_value", default=None)
    if values is not None and values.null_count() < len(values):
        columns["values"] = values.cast(pl.Float32).fill_null(np.nan).to_numpy()
    return columns


def _context_codes(rows: pl.DataFrame, fields: Sequence[str]) -> dict[str, Any]:
    """``contexts`` ((n, fields) codes, -1: none), ``context_fields`` and ``context_names``
    (``"FIELD=value"``) of the rows' context columns."""
    fields = [field for field in fields if rows[field].null_count() < len(rows)]
    if not fields:
        return {}
    names: list[str] = []
    codes = np.full((len(rows), len(fields)), -1, dtype=np.int32)
    for column, field in enumerate(fields):
        values = rows[field].cast(pl.String)
        distinct = sorted(values.drop_nulls().unique().to_list())
        code = values.replace_strict(distinct, list(range(len(names), len(names) + len(distinct))),
                                     default=-1, return_dtype=pl.Int32)  # fmt: skip
        codes[:, column] = code.to_numpy()
        names += [f"{field}={value}" for value in distinct]
    return {"contexts": codes, "context_fields": tuple(fields), "context_names": tuple(names)}


def context_columns(interactions: pl.DataFrame) -> list[str]:
    """The interactions' request-context columns (e.g. ``DEVICE``): the text, integer and
    boolean columns that are not reserved and have few distinct values (at most 64 or a tenth
    of the rows: a category, not an id or a free text)."""
    reserved = RESERVED["interactions"]
    chosen = []
    for name, dtype in interactions.schema.items():
        if name.upper() in reserved or not (
            dtype in (pl.String, pl.Categorical, pl.Boolean) or dtype.is_integer()
        ):
            continue
        if interactions[name].n_unique() <= max(64, len(interactions) // 10):
            chosen.append(name)
    return chosen


def _weighted(frame: pl.DataFrame, config: SolutionDataConfig) -> pl.DataFrame:
    """Keep the rows ``config`` selects and add their ``weight`` column (float32)."""
    weight: pl.Expr = pl.lit(1.0)
    kept = frame
    if config.event_weights is not None:
        _require(frame, "event_type", "event_weights")
        kept = kept.filter(pl.col("event_type").is_in(list(config.event_weights)))
        weight = pl.col("event_type").replace_strict(config.event_weights, return_dtype=pl.Float64)
    if config.min_event_value is not None:
        _require(frame, "event_value", "min_event_value")
        kept = kept.filter(pl.col("event_value") >= config.min_event_value)  # null is dropped
    if kept.is_empty() and not frame.is_empty():
        raise InvalidInput(
            f"no interactions left after the solution's filters (event_weights="
            f"{config.event_weights}, min_event_value={config.min_event_value})"
        )
    return kept.with_columns(weight=weight.cast(pl.Float32))


def _require(frame: pl.DataFrame, column: str, option: str) -> None:
    if column not in frame.columns or frame[column].null_count() == len(frame):
        raise InvalidInput(f"{option} needs an {column.upper()} column with values")


def _check_range(indexes: IntArray, size: int, name: str) -> None:
    if len(indexes) and (indexes.min() < 0 or indexes.max() >= size):
        raise InvalidInput(f"interactions.{name}: values must lie in 0..{size - 1}")


def _checked(frame: pl.DataFrame, dataset: DatasetKind) -> pl.DataFrame:
    missing = [column for column in REQUIRED[dataset] if column not in frame.columns]
    if missing:
        raise InvalidInput(f"{dataset}: missing required column(s) {', '.join(missing)}")
    frame = _ids_as_text(frame)
    for column in REQUIRED[dataset]:
        empty = frame[column].is_null()
        if frame[column].dtype == pl.String:
            empty = empty | (frame[column].str.strip_chars() == "")
        if empty.any():
            row = int(empty.arg_true()[0])
            raise InvalidInput(f"{dataset}.{column}: empty value (row {row + 1})")
    return frame


def _index_of(ids: pl.Expr, vocabulary: Vocabulary) -> pl.Expr:
    known = vocabulary.ids(range(len(vocabulary)))
    return ids.replace_strict(known, list(range(len(known))), return_dtype=pl.Int32)


def _optional(frame: pl.DataFrame, column: str, dtype: type[pl.DataType]) -> pl.Series:
    if column in frame.columns:
        return frame[column].cast(dtype, strict=False)
    return pl.Series(column, [None] * len(frame), dtype=dtype)


def _epoch_seconds(values: pl.Series, where: str) -> pl.Series:
    """Epoch seconds (Int64) from numbers, datetimes or text (numbers or ISO-8601)."""
    dtype = values.dtype
    if dtype.is_numeric():
        seconds = values.cast(pl.Float64).floor().cast(pl.Int64, strict=False)
    elif isinstance(dtype, pl.Datetime | pl.Date):
        seconds = values.cast(pl.Datetime("ms")).dt.epoch("s")
    else:
        text = values.cast(pl.String).str.strip_chars()
        seconds = text.cast(pl.Float64, strict=False).floor().cast(pl.Int64, strict=False)
        others = text.filter(seconds.is_null() & text.is_not_null()).unique()
        if len(others):  # ISO-8601 (or garbage, which parse_timestamp names)
            parsed = {value: parse_timestamp(value, where) for value in others}
            seconds = seconds.fill_null(text.replace_strict(parsed, default=None))
    return seconds.rename(values.name)


def impression_negatives(
    impressions: pl.Series, indexed: pl.DataFrame, items: Vocabulary
) -> tuple[IntArray, IntArray]:
    """(user, item) pairs shown in ``impressions`` (``|``-joined item ids, one entry per row of
    ``indexed``) that the user never interacted with."""
    shown = pl.DataFrame(
        {"user_index": indexed["user_index"], "item": impressions.str.split("|")}
    ).explode("item")
    known = {value: i for i, value in enumerate(items.ids(range(len(items)))) if value is not None}
    shown = shown.select(
        "user_index",
        item_index=pl.col("item")
        .str.strip_chars()
        .replace_strict(known, default=None, return_dtype=pl.Int32),
    ).drop_nulls()
    interacted = indexed.select("user_index", "item_index").unique()
    negatives = (
        shown.unique()
        .join(interacted, on=["user_index", "item_index"], how="anti")
        .sort("user_index", "item_index")
    )
    return (
        negatives["user_index"].to_numpy().astype(np.int32),
        negatives["item_index"].to_numpy().astype(np.int32),
    )


def categorical_columns(items: pl.DataFrame) -> list[str]:
    """String columns whose ``|``-split values number fewer than half the distinct items."""
    n_items = items["ITEM_ID"].n_unique()
    chosen = []
    for name, dtype in items.schema.items():
        if name in ("ITEM_ID", "CREATION_TIMESTAMP") or dtype not in (pl.String, pl.Categorical):
            continue
        distinct = _split_values(items[name]).n_unique()
        if 0 < distinct < n_items / 2:
            chosen.append(name)
    return chosen


def _split_values(values: pl.Series) -> pl.Series:
    parts = values.cast(pl.String).str.split("|").explode().str.strip_chars()
    return parts.filter(parts.is_not_null() & (parts != ""))


def item_feature_matrix(
    items: pl.DataFrame | None, vocabulary: Vocabulary, columns: Sequence[str] | None
) -> tuple[sp.csr_matrix | None, tuple[str, ...]]:
    """One-hot (n_items x n_features) CSR over categorical columns, and the feature names."""
    if items is None:
        return None, ()
    items = items.unique(subset="ITEM_ID", keep="last", maintain_order=True)
    chosen = categorical_columns(items) if columns is None else list(columns)
    unknown = [column for column in chosen if column not in items.columns]
    if unknown:
        raise InvalidInput(f"items: no categorical column(s) {', '.join(unknown)}")
    if not chosen:
        return None, ()
    item_index = vocabulary.indices(items["ITEM_ID"].to_list())
    per_column = [_one_hot_pairs(item_index, items[column], column) for column in chosen]
    names = [name for pairs in per_column for name in sorted(set(pairs["feature"]))]
    pairs = pl.concat(per_column)
    feature_index = pairs["feature"].replace_strict(names, list(range(len(names))))
    matrix = sp.csr_matrix(
        (np.ones(len(pairs), np.float32), (pairs["item_index"].to_numpy(), feature_index)),
        shape=(len(vocabulary), len(names)),
    )
    matrix.data[:] = 1.0  # a value listed twice for one item is still one-hot
    return matrix, tuple(names)


def _one_hot_pairs(item_index: IntArray, values: pl.Series, column: str) -> pl.DataFrame:
    """(item_index, feature) rows, one per ``|``-separated value: ``"GENRES=Comedy"``."""
    return (
        pl.DataFrame({"item_index": item_index, "value": values.cast(pl.String).str.split("|")})
        .explode("value")
        .with_columns(pl.col("value").str.strip_chars())
        .filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
        .select("item_index", feature=pl.lit(f"{column}=") + pl.col("value"))
    )


def item_numeric_matrix(
    items: pl.DataFrame | None, vocabulary: Vocabulary
) -> tuple[FloatArray | None, tuple[str, ...]]:
    """The numerical item fields (e.g. ``YEAR``, ``PRICE``) as an (n_items x k) float32 matrix,
    NaN where unknown, and their names; ``(None, ())`` without any."""
    if items is None:
        return None, ()
    items = items.unique(subset="ITEM_ID", keep="last", maintain_order=True)
    names = tuple(name for name, dtype in items.schema.items()
                  if dtype.is_numeric() and name not in RESERVED["items"])  # fmt: skip
    if not names:
        return None, ()
    matrix = np.full((len(vocabulary), len(names)), np.nan, dtype=np.float32)
    rows = vocabulary.indices(items["ITEM_ID"].to_list())
    for column, name in enumerate(names):
        matrix[rows, column] = items[name].cast(pl.Float32).fill_null(np.nan).to_numpy()
    return matrix, names


def item_creation_times(items: pl.DataFrame | None, vocabulary: Vocabulary) -> Int64Array | None:
    """Creation time per item (epoch seconds, -1 where unknown); None without the column."""
    if items is None or "CREATION_TIMESTAMP" not in items.columns:
        return None
    items = items.unique(subset="ITEM_ID", keep="last", maintain_order=True)
    seconds = _epoch_seconds(items["CREATION_TIMESTAMP"], "items.CREATION_TIMESTAMP")
    created = np.full(len(vocabulary), -1, dtype=np.int64)
    created[vocabulary.indices(items["ITEM_ID"].to_list())] = seconds.fill_null(-1).to_numpy()
    return created
