"""Feature declarations: the YAML/JSON format, parsed and validated into frozen specs.

A declaration is ``{"features": [{"name": ..., "kind": ..., ...}, ...]}``. Kinds: ``counter``
(a windowed aggregate of the event stream per entity), ``sessions`` (sessions on an item longer
than N minutes), ``rate`` (a ratio of two event counts smoothed toward a prior), ``batch`` (the
same aggregates over the last N days, recomputed on a schedule) and ``request`` (context fields,
hour of day, day of week, item age). docs/features.md describes every key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tastebud.errors import InvalidInput

Entity = Literal["item", "user", "user_item", "user_item_field"]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"(\d+)([smhd])")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
MAX_FEATURES = 200
LAST_SEEN_WINDOW = "30d"


def parse_duration(text: str | int) -> int:
    """``"5m"``, ``"1h"``, ``"7d"`` (or seconds) -> seconds; ValueError names the text."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    match = _DURATION.fullmatch(str(text).strip().lower())
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 5m, 1h, 24h or 7d, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("use a letter, then letters, digits or '_' (at most 63)")
        return value


def _window(cls: Any, value: str | int | None) -> int | None:
    return None if value is None else parse_duration(value)


class _Entity(_Spec):
    entity: Entity = "item"
    field: str | None = Field(default=None, description="Item field of user_item_field.")
    event_types: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check_entity(self) -> Any:
        if (self.entity == "user_item_field") != (self.field is not None):
            raise ValueError("field: give it exactly when entity is user_item_field")
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        return {"item": ("item",), "user": ("user",), "user_item": ("user", "item"),
                "user_item_field": ("user", f"field:{self.field}")}[self.entity]  # fmt: skip


class CounterSpec(_Entity):
    """A sliding-window aggregate of events per entity."""

    kind: Literal["counter"]
    aggregation: Literal["count", "distinct_users", "sum", "last_seen"]
    window: int  # seconds; last_seen looks back 30 days unless given

    _check_window = field_validator("window", mode="before")(_window)

    @model_validator(mode="before")
    @classmethod
    def _last_seen_window(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("aggregation") == "last_seen":
            return {"window": LAST_SEEN_WINDOW, **data}
        return data


class SessionsSpec(_Spec):
    """Sessions on each item that lasted more than ``min_minutes``, active within ``window``."""

    kind: Literal["sessions"]
    min_minutes: float = Field(gt=0)
    window: int
    gap_minutes: float = Field(default=30.0, gt=0, description="Without SESSION_ID.")
    event_types: tuple[str, ...] | None = None

    _check_window = field_validator("window", mode="before")(_window)

    @property
    def entity(self) -> Entity:
        return "item"


class RateSpec(_Entity):
    """``(count(numerator) + k·p) / (count(denominator) + k)``; ``p`` is ``prior``, or the
    global ratio over the same window when it is not given."""

    kind: Literal["rate"]
    numerator: tuple[str, ...] = Field(min_length=1)
    denominator: tuple[str, ...] = Field(min_length=1)
    prior_strength: float = Field(default=10.0, ge=0)
    prior: float | None = Field(default=None, ge=0)
    window: int

    _check_window = field_validator("window", mode="before")(_window)


class BatchSpec(_Entity):
    """An aggregate over the ``days`` before each computation, recomputed ``every``."""

    kind: Literal["batch"]
    aggregation: Literal["count", "sum", "distinct_users", "share", "rate"]
    days: int = Field(gt=0, le=3650)
    every: int = 86_400
    numerator: tuple[str, ...] | None = None
    denominator: tuple[str, ...] | None = None
    prior_strength: float = Field(default=10.0, ge=0)
    prior: float | None = Field(default=None, ge=0)

    _check_every = field_validator("every", mode="before")(_window)

    @model_validator(mode="after")
    def _check(self) -> Any:
        if (self.aggregation == "rate") != (self.numerator is not None):
            raise ValueError(
                "numerator: give numerator and denominator exactly for aggregation rate"
            )
        if self.aggregation == "rate" and self.denominator is None:
            raise ValueError("denominator: required for aggregation rate")
        if self.every < 60:
            raise ValueError("every: at least 1m")
        return self

    @property
    def window(self) -> int:
        return self.days * 86_400


class RequestSpec(_Spec):
    """A value of the request itself: a context field, the hour, the weekday, the item's age."""

    kind: Literal["request"]
    source: Literal["context", "hour_of_day", "day_of_week", "item_age"]
    field: str | None = None
    encoding: Literal["code", "onehot"] = "code"
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> Any:
        if (self.source == "context") != (self.field is not None):
            raise ValueError("field: give it exactly when source is context")
        if self.source == "context" and not self.values:
            raise ValueError("values: list the context values to encode (codes follow the list)")
        return self

    @property
    def columns(self) -> list[str]:
        """The columns it produces: one, or one per value when one-hot."""
        if self.source == "context" and self.encoding == "onehot":
            return [f"{self.name}.{value}" for value in self.values or ()]
        return [self.name]


FeatureSpec = Annotated[
    CounterSpec | SessionsSpec | RateSpec | BatchSpec | RequestSpec, Field(discriminator="kind")
]
STREAM = (CounterSpec, SessionsSpec, RateSpec)
KINDS = ("counter", "sessions", "rate", "batch", "request")
_ADAPTER: TypeAdapter[FeatureSpec] = TypeAdapter(FeatureSpec)


class FeatureSet:
    """A validated declaration: its features in order, and the columns they produce."""

    def __init__(self, features: Sequence[Any], *, version: int = 0, created_at: float = 0.0):
        self.features = list(features)
        self.version = version
        self.created_at = created_at
        self.by_name = {f.name: f for f in self.features}
        self.columns: list[str] = []
        self.column_of: dict[str, tuple[Any, int]] = {}  # column -> (spec, one-hot position)
        for feature in self.features:
            names = feature.columns if isinstance(feature, RequestSpec) else [feature.name]
            for position, column in enumerate(names):
                self.columns.append(column)
                self.column_of[column] = (feature, position)

    def to_json(self) -> dict[str, Any]:
        return {"features": [f.model_dump(mode="json", exclude_none=True)
                             for f in self.features]}  # fmt: skip

    def select(self, names: Sequence[str] | None) -> list[str]:
        """The columns asked for (all by default); InvalidInput names an unknown one."""
        if names is None:
            return list(self.columns)
        unknown = [n for n in names if n not in self.column_of]
        if unknown:
            raise InvalidInput(
                f"features: unknown {', '.join(map(repr, unknown))}; declared: "
                f"{', '.join(self.columns) or 'none'}"
            )
        return list(names)

    @property
    def stream(self) -> list[Any]:
        return [f for f in self.features if isinstance(f, STREAM)]

    @property
    def batch(self) -> list[BatchSpec]:
        return [f for f in self.features if isinstance(f, BatchSpec)]

    @property
    def layout(self) -> dict[str, list[str]]:
        """Online features by the kind of entity that keys them, in declaration order."""
        kinds: dict[str, list[str]] = {}
        for feature in self.features:
            if not isinstance(feature, RequestSpec):
                kinds.setdefault(kind_of(feature), []).append(feature.name)
        return kinds

    @property
    def fields(self) -> set[str]:
        """Item fields that entities name (user_item_field)."""
        return {f.field for f in self.features if getattr(f, "entity", "") == "user_item_field"}


def kind_of(feature: Any) -> str:
    """``item``, ``user``, ``user_item`` or ``field:NAME`` (user x the item's field value)."""
    entity = getattr(feature, "entity", "item")
    return f"field:{feature.field}" if entity == "user_item_field" else str(entity)


def parse_text(text: str) -> FeatureSet:
    """Parse YAML (JSON is YAML too) and validate it."""
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"features: not valid YAML or JSON ({exc})") from None
    return parse(body)


def parse(body: Any) -> FeatureSet:
    """Validate a declaration; InvalidInput names the feature and the key at fault."""
    if isinstance(body, Mapping):
        extra = set(body) - {"features"}
        if extra:
            raise InvalidInput(f"features file: unknown key(s) {', '.join(sorted(extra))}")
        body = body.get("features")
    if not isinstance(body, list) or not body:
        raise InvalidInput("features: expected a non-empty list under 'features'")
    if len(body) > MAX_FEATURES:
        raise InvalidInput(f"features: at most {MAX_FEATURES}, got {len(body)}")
    features = [_one(position, raw) for position, raw in enumerate(body)]
    seen: set[str] = set()
    for column in (c for f in FeatureSet(features).features for c in _columns(f)):
        if column in seen:
            raise InvalidInput(f"feature {column!r}.name: declared twice")
        seen.add(column)
    return FeatureSet(features)


def _columns(feature: Any) -> list[str]:
    return feature.columns if isinstance(feature, RequestSpec) else [feature.name]


def _one(position: int, raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"features[{position}]: expected a mapping, got {raw!r}")
    name = raw.get("name")
    where = f"feature {name!r}" if isinstance(name, str) else f"features[{position}]"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    try:
        return _ADAPTER.validate_python(dict(raw))
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(p) for p in first["loc"] if str(p) != kind]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        key = ".".join(location)
        if not key:  # a model-level check: its message starts with the key ("window: …")
            head, _, rest = message.partition(": ")
            key, message = (head, rest) if _NAME.fullmatch(head) else ("(feature)", message)
        raise InvalidInput(f"{where}.{key}: {message}") from None
