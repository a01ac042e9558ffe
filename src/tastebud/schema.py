"""Dataset schemas: which fields a dataset has, their types, and validation of every write.

A schema lists a dataset's fields. Reserved fields (``USER_ID``, ``ITEM_ID``, ``TIMESTAMP``, …) have
fixed types and are always present; every other field is declared by the team. Bulk imports are
validated column by column with polars (:func:`validate_frame`); real-time writes one record at a
time (:func:`validate_record`). Both give the same verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, get_args

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator

from tastebud.errors import InvalidInput

DatasetKind = Literal["interactions", "items", "users"]
DATASETS: tuple[DatasetKind, ...] = ("interactions", "items", "users")
FieldType = Literal["string", "categorical", "numerical", "textual", "timestamp"]
FIELD_TYPES: tuple[FieldType, ...] = get_args(FieldType)

MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 20_000
# Epoch seconds beyond 2100 are almost always milliseconds sent by mistake.
MAX_EPOCH_SECONDS = 4_102_444_800
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# A decimal number as polars parses it in bulk (no "1_000", no non-ASCII digits, no inf/nan).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

RESERVED: dict[DatasetKind, dict[str, FieldType]] = {
    "interactions": {
        "USER_ID": "string",
        "ITEM_ID": "string",
        "TIMESTAMP": "timestamp",
        "EVENT_TYPE": "string",
        "EVENT_VALUE": "numerical",
        "EVENT_ID": "string",
        "SESSION_ID": "string",
        "RECOMMENDATION_ID": "string",
        "IMPRESSION": "string",
    },
    "items": {"ITEM_ID": "string", "CREATION_TIMESTAMP": "timestamp"},
    "users": {"USER_ID": "string"},
}
REQUIRED: dict[DatasetKind, tuple[str, ...]] = {
    "interactions": ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    "items": ("ITEM_ID",),
    "users": ("USER_ID",),
}
_ID_FIELDS = {"USER_ID", "ITEM_ID", "EVENT_ID", "SESSION_ID", "RECOMMENDATION_ID"}
# The ISO-8601 shapes accepted on both the bulk and the real-time path: a date, optionally a time
# (after T or a space) to the minute or second with a fraction, optionally Z or an offset. Naive
# times are UTC. Both paths rewrite a match to one canonical form before parsing it.
_ISO = r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2})(:\d{2}(?:\.\d{1,9})?)?)?([Zz]|[+-]\d{2}:?\d{2})?"
_ISO_RE = re.compile(_ISO)
_CANONICAL_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z")


class FieldSpec(BaseModel):
    """One field of a dataset. ``categorical`` values may hold several values joined by ``|``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FieldType

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"field name {name!r}: use letters, digits and _ (max 64)")
        return name


class DatasetSchema(BaseModel):
    """The fields of one dataset; reserved fields are added with their fixed types."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: DatasetKind
    fields: tuple[FieldSpec, ...] = ()

    @classmethod
    def build(cls, dataset: DatasetKind, fields: Mapping[str, str]) -> DatasetSchema:
        """Schema from ``{name: type}``; reserved names are matched case-insensitively."""
        reserved = RESERVED[dataset]
        merged: dict[str, str] = dict(reserved)
        for raw_name, type_ in fields.items():
            name = raw_name.upper() if raw_name.upper() in reserved else raw_name
            if name in reserved and type_ != reserved[name]:
                raise InvalidInput(
                    f"{dataset}.{name}: reserved field has type {reserved[name]!r}, got {type_!r}"
                )
            if type_ not in FIELD_TYPES:
                raise InvalidInput(
                    f"{dataset}.{name}: unknown type {type_!r}; expected one of "
                    f"{', '.join(FIELD_TYPES)}"
                )
            merged[name] = type_
        try:
            specs = tuple(FieldSpec(name=n, type=t) for n, t in merged.items())  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidInput(f"{dataset} schema: {exc}") from exc
        return cls(dataset=dataset, fields=specs)

    @classmethod
    def default(cls, dataset: DatasetKind) -> DatasetSchema:
        return cls.build(dataset, {})

    @property
    def types(self) -> dict[str, FieldType]:
        return {f.name: f.type for f in self.fields}

    @property
    def extra_fields(self) -> dict[str, FieldType]:
        """Fields that are not reserved: item/user metadata, interaction context."""
        reserved = RESERVED[self.dataset]
        return {f.name: f.type for f in self.fields if f.name not in reserved}

    def to_json_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "fields": {f.name: f.type for f in self.fields}}


def canonical_name(dataset: DatasetKind, column: str) -> str:
    return column.upper() if column.upper() in RESERVED[dataset] else column


def infer_schema(dataset: DatasetKind, frame: pl.DataFrame) -> DatasetSchema:
    """Guess field types from a frame of strings: numbers, `|`-lists, long text, timestamps."""
    fields: dict[str, str] = {}
    for column in frame.columns:
        name = canonical_name(dataset, column)
        if name in RESERVED[dataset]:
            continue
        fields[name] = _infer_type(frame[column])
    return DatasetSchema.build(dataset, fields)


def _infer_type(values: pl.Series) -> str:
    sample = values.drop_nulls().head(10_000).cast(pl.String)
    sample = sample.filter(sample.str.len_chars() > 0)
    if sample.is_empty():
        return "categorical"
    leading_zero = sample.str.contains(r"^0\d").any()
    numbers = sample.cast(pl.Float64, strict=False)
    if numbers.null_count() == 0 and not leading_zero:
        return "numerical"
    timestamps = sample.to_frame("v").select(_timestamp_expr("v"))["v"]
    if timestamps.null_count() == 0 and not leading_zero:  # zip codes are not epoch seconds
        return "timestamp"
    if sample.str.contains(r"\|").any():
        return "categorical"
    mean_length = float(sample.str.len_chars().cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]
    unique_share = sample.n_unique() / len(sample)
    if mean_length > 40 or (unique_share > 0.5 and sample.str.contains(" ").mean() > 0.5):  # type: ignore[operator]
        return "textual"
    return "categorical"


def _timestamp_expr(column: str, *, iso: bool = True) -> pl.Expr:
    """Epoch seconds from numbers or ISO-8601 text; ``iso=False`` skips the (slower) dates."""
    text = pl.col(column).str.strip_chars()
    # strict=False: nan, inf and 1e300 become null (a rejected row), not an exception.
    as_number = text.cast(pl.Float64, strict=False).floor().cast(pl.Int64, strict=False)
    if not iso:
        return as_number
    parts = text.str.extract_groups(f"^{_ISO}$")
    offset = (
        parts.struct[3]
        .str.replace(r"^[Zz]$", "+00:00")
        .str.replace(r"^([+-]\d{2})(\d{2})$", "$1:$2")
    )
    canonical = pl.concat_str(
        parts.struct[0], pl.lit("T"), parts.struct[1].fill_null("00:00"),
        parts.struct[2].fill_null(":00"), offset.fill_null("+00:00"),
    )  # fmt: skip
    dates = pl.coalesce(
        [canonical.str.to_datetime(format=f, strict=False, time_zone="UTC")
         for f in _CANONICAL_FORMATS]
    ).dt.epoch("s")  # fmt: skip
    return pl.coalesce(as_number, dates)


def validate_frame(
    schema: DatasetSchema, raw: pl.DataFrame, *, first_row: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Check and convert a frame of strings against ``schema``.

    Args:
        schema: the dataset's schema.
        raw: the file's columns as strings (column names as in the file).
        first_row: the number of ``raw``'s first row within the whole file (0-based).

    Returns:
        ``(accepted, rejected)``: accepted rows with canonical names and typed columns
        (timestamps as Int64 epoch seconds, numbers Float64, the rest String); rejected rows as
        ``row`` (numbered from ``first_row``) and ``reason``.

    Raises:
        InvalidInput: a column is unknown to the schema or a required column is missing.
    """
    dataset = schema.dataset
    renamed = raw.rename({c: canonical_name(dataset, c) for c in raw.columns})
    types = schema.types
    unknown = [c for c in renamed.columns if c not in types]
    if unknown:
        raise InvalidInput(
            f"{dataset}: unknown field(s) {', '.join(map(repr, unknown))}; declared fields: "
            f"{', '.join(types)} (declare them in the schema first)"
        )
    missing = [c for c in REQUIRED[dataset] if c not in renamed.columns]
    if missing:
        raise InvalidInput(f"{dataset}: required column(s) missing: {', '.join(missing)}")

    text = renamed.with_columns(
        [
            pl.col(c).cast(pl.String).str.strip_chars().replace("", None).alias(c)
            for c in renamed.columns
        ]
    ).with_row_index("__row")
    converted, problems = [], []
    for column in renamed.columns:
        iso = types[column] == "timestamp" and _has_non_numbers(text[column])
        typed, problem = _convert(dataset, column, types[column], iso=iso)
        converted.append(typed.alias(column))
        problems.append(problem)
    # One pass: typed values and reasons are both computed from the raw text columns.
    checked = (
        text.lazy().with_columns([*converted, pl.coalesce(problems).alias("__reason")]).collect()
    )
    bad = checked.filter(pl.col("__reason").is_not_null())
    rejected = bad.select(
        (pl.col("__row").cast(pl.Int64) + first_row).alias("row"),
        pl.col("__reason").alias("reason"),
    )
    accepted = checked.filter(pl.col("__reason").is_null()).drop("__row", "__reason")
    return accepted, rejected


def _has_non_numbers(values: pl.Series) -> bool:
    return bool(
        values.str.strip_chars().cast(pl.Float64, strict=False).null_count() > values.null_count()
    )


def _convert(
    dataset: str, column: str, type_: FieldType, *, iso: bool = True
) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, reason-or-null) expressions for one column."""
    source = pl.col(column)
    where = f"{dataset}.{column}"
    required = column in REQUIRED.get(dataset, ())  # type: ignore[call-overload]
    if type_ == "numerical":
        typed = source.cast(pl.Float64, strict=False)
        bad = source.is_not_null() & (typed.is_null() | typed.is_nan() | typed.is_infinite())
        reason = pl.format(f"{where}: expected a number, got '{{}}'", source)
    elif type_ == "timestamp":
        typed = _timestamp_expr(column, iso=iso)
        bad = source.is_not_null() & (typed.is_null() | (typed < 0) | (typed > MAX_EPOCH_SECONDS))
        reason = pl.format(f"{where}: expected epoch seconds or ISO-8601, got '{{}}'", source)
    else:
        typed = source
        limit = MAX_ID_LENGTH if column in _ID_FIELDS else MAX_TEXT_LENGTH
        bad = source.str.len_chars() > limit
        reason = pl.lit(f"{where}: longer than {limit} characters")
    problem: pl.Expr = pl.when(bad).then(reason)
    if required:
        problem = (
            pl.when(source.is_null())
            .then(pl.lit(f"{where}: required value is missing"))
            .otherwise(problem)
        )
    return typed, problem


def _parse_iso(text: str, where: str) -> float:
    match = _ISO_RE.fullmatch(text)
    error = InvalidInput(f"{where}: expected epoch seconds or ISO-8601, got {text!r}")
    if match is None:
        raise error
    date, minutes, seconds, offset = match.groups()
    offset = "+00:00" if offset in (None, "Z", "z") else offset
    if len(offset) == 5:  # +HHMM
        offset = f"{offset[:3]}:{offset[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{date}T{minutes or '00:00'}{seconds or ':00'}{offset}")
    except ValueError:
        raise error from None
    return parsed.timestamp()


def parse_timestamp(value: object, where: str) -> int:
    """One timestamp (epoch seconds, or an ISO-8601 string) as epoch seconds."""
    seconds: float
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: expected epoch seconds or ISO-8601, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if _DECIMAL.fullmatch(value.strip()):
            seconds = float(value)
        else:
            seconds = _parse_iso(value.strip(), where)
    else:
        raise InvalidInput(f"{where}: expected epoch seconds or ISO-8601, got {value!r}")
    if not 0 <= seconds < MAX_EPOCH_SECONDS + 1:  # 0 <= floor(seconds) <= MAX, as in bulk
        raise InvalidInput(f"{where}: {value!r} is out of range (epoch seconds, 1970–2100)")
    return int(seconds)


def validate_record(
    schema: DatasetSchema, record: Mapping[str, Any], *, where: str
) -> dict[str, Any]:
    """Check one record's non-reserved fields (real-time path); returns them typed.

    Values of categorical fields may be lists, stored joined by ``|``.
    """
    extra = schema.extra_fields
    clean: dict[str, Any] = {}
    for name, value in record.items():
        field = f"{where}.{name}"
        type_ = extra.get(name)
        if type_ is None:
            raise InvalidInput(f"{field}: unknown field; declared: {', '.join(extra) or '(none)'}")
        if value is None or (isinstance(value, str) and not value.strip()):  # blank, as in bulk
            continue
        if type_ == "numerical":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InvalidInput(f"{field}: expected a number, got {value!r}")
            if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
                raise InvalidInput(f"{field}: expected a number, got {value!r}")
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise InvalidInput(f"{field}: expected a finite number, got {value!r}")
            clean[name] = number
        elif type_ == "timestamp":
            clean[name] = parse_timestamp(value, field)
        elif type_ == "categorical" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise InvalidInput(f"{field}: expected a list of strings, got {value!r}")
            clean[name] = "|".join(value)
        elif isinstance(value, str):
            if len(value) > MAX_TEXT_LENGTH:
                raise InvalidInput(f"{field}: longer than {MAX_TEXT_LENGTH} characters")
            clean[name] = value
        else:
            raise InvalidInput(f"{field}: expected a string, got {value!r}")
    return clean


def check_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: expected a non-empty string id, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{where}: longer than {MAX_ID_LENGTH} characters")
    return value
