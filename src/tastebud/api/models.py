"""The HTTP API's wire format, shared by the routes and the Python client.

Request bodies are pydantic models (camelCase on the wire, unknown keys rejected). Responses are
TypedDicts: the routes return them (FastAPI validates and documents them) and the client hands the
parsed JSON back with the same types, so both sides read one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# pydantic needs typing_extensions' TypedDict before Python 3.12.
from typing_extensions import TypedDict

from tastebud.ingest import ItemIn, UserIn
from tastebud.recipes.base import MAX_HORIZON
from tastebud.schema import MAX_ID_LENGTH, DatasetKind, FieldType

ImportMode = Literal["full", "incremental"]
ExportFormat = Literal["csv", "parquet"]
TokenScope = Literal["admin", "recommend", "ingest"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
_V = TypeVar("_V")


def camel_keys(values: Mapping[str, _V]) -> dict[str, _V]:
    """``{"max_error_rate": 0.1}`` -> ``{"maxErrorRate": 0.1}`` (engine dicts on the wire)."""
    return {to_camel(key): value for key, value in values.items()}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def example(**body: Any) -> ConfigDict:
    """A request model's example for the OpenAPI document (wire names, camelCase)."""
    return ConfigDict(json_schema_extra={"examples": [body]})


# requests ------------------------------------------------------------------------------------
class GroupIn(_Body):
    model_config = example(name="shop")

    name: str


class SchemaIn(_Body):
    fields: dict[str, FieldType] = Field(
        default_factory=dict, description="Field name -> type; reserved fields are added."
    )


class ImportJobIn(_Body):
    dataset: DatasetKind
    path: str = Field(description="A CSV, CSV.gz or Parquet file on the server.")
    mode: ImportMode = "incremental"
    max_error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    encoding: str = "utf-8"


class BatchTargetIn(_Body):
    url: str = Field(description="redis://host:6379/0")
    key_prefix: str = "recs:"
    ttl_seconds: int | None = Field(default=None, ge=1)


class BatchJobIn(_Body):
    """A batch job over JSON Lines files on the server (see docs/batch.md for the formats)."""

    job_type: Literal["recommend", "segment"] = "recommend"
    solution: str | None = Field(default=None, description="Its newest active version answers.")
    solution_version_id: str | None = Field(default=None, description="This version answers.")
    input_path: str = Field(description="JSON Lines on the server, one request a line.")
    output_path: str | None = Field(
        default=None, description="Where the server writes one answer per input line."
    )
    to: BatchTargetIn | None = Field(default=None, description="Also write answers to Redis.")
    num_results: int = Field(default=25, ge=1, le=500)
    filter_name: str | None = None
    max_error_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    explain: bool = Field(default=False, description="Each item gets its reasons.")
    executor: Literal["local", "processes", "ray"] = "local"
    workers: int = Field(default=2, ge=1, le=1024)


class ItemsIn(_Body):
    items: list[ItemIn] = Field(min_length=1)


class UsersIn(_Body):
    users: list[UserIn] = Field(min_length=1)


class DeleteUsersIn(_Body):
    user_ids: list[Id] = Field(min_length=1)


class ExportIn(_Body):
    dataset: DatasetKind
    format: ExportFormat = "csv"


class TokenIn(_Body):
    model_config = example(name="web-backend", scope="recommend")

    name: str = Field(min_length=1, max_length=128)
    scope: TokenScope = "ingest"


# responses -----------------------------------------------------------------------------------
class ErrorDetail(TypedDict):
    type: str
    message: str


class ErrorOut(TypedDict):
    error: ErrorDetail


class HealthOut(TypedDict):
    status: str
    version: str


class GroupOut(TypedDict):
    name: str
    createdAt: int


class GroupList(TypedDict):
    groups: list[GroupOut]


class GroupStatus(TypedDict):
    group: str
    counts: dict[str, int]


class SchemaOut(TypedDict):
    dataset: DatasetKind
    fields: dict[str, FieldType]


class JobOut(TypedDict):
    id: str
    group: str
    kind: str
    status: JobStatus
    progress: float
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    createdAt: float
    updatedAt: float


class JobList(TypedDict):
    jobs: list[JobOut]


class PutEventsOut(TypedDict):
    accepted: int
    duplicates: int


class RecordsOut(TypedDict):
    accepted: int


class DeleteUsersOut(TypedDict):
    deleted: int


class EventOut(TypedDict):
    itemId: str
    timestamp: int
    userId: str | None
    sessionId: NotRequired[str | None]
    eventType: NotRequired[str | None]
    eventValue: NotRequired[float | None]
    eventId: NotRequired[str | None]
    recommendationId: NotRequired[str | None]
    impression: NotRequired[str | None]
    properties: NotRequired[dict[str, Any] | None]


class EventList(TypedDict):
    userId: str
    events: list[EventOut]


class TokenOut(TypedDict):
    name: str
    scope: TokenScope
    createdAt: int


class TokenCreated(TokenOut):
    token: str


class TokenList(TypedDict):
    tokens: list[TokenOut]


# solutions and recommendations ---------------------------------------------------------------
class SolutionIn(_Body):
    model_config = example(name="popular", recipe="popularity-count", params={"half_life_days": 30})

    name: str = Field(min_length=1, max_length=63)
    recipe: str
    params: dict[str, Any] = Field(default_factory=dict, description="Recipe hyperparameters.")
    event_weights: dict[str, float] | None = Field(
        default=None, description="EVENT_TYPE -> weight; only listed types are used."
    )
    min_event_value: float | None = Field(
        default=None, description="Drop interactions whose EVENT_VALUE is below this."
    )
    hpo_trials: int | None = Field(default=None, ge=1, le=500, description="Optuna trials.")
    evaluate: bool = Field(default=True, description="Compute offline metrics per version.")
    replace: bool = False

    def body(self) -> dict[str, Any]:
        """The engine's solution body."""
        data = {"event_weights": self.event_weights, "min_event_value": self.min_event_value}
        return {
            "recipe": self.recipe, "params": self.params, "evaluate": self.evaluate,
            "data": {k: v for k, v in data.items() if v is not None},
            **({"hpo": {"trials": self.hpo_trials}} if self.hpo_trials else {}),
        }  # fmt: skip


class TargetIn(_Body):
    solution: str | None = Field(default=None, description="Its newest active version answers.")
    solution_version_id: str | None = Field(default=None, description="Or this version.")


class FilteredIn(TargetIn):
    """A request that may name a filter of the group (``filterName``) with its parameters."""

    filter: str | None = Field(
        default=None, alias="filterName", description="A filter of the group, by name."
    )
    filter_values: dict[str, list[str] | str] | None = Field(
        default=None,
        description='$PARAMETER name -> values, e.g. {"GENRES": ["Comedy", "Drama"]}; a string '
        'of comma-separated quoted values (\'"Comedy","Drama"\') also works.',
    )


Context = dict[str, Annotated[str, Field(max_length=256)]]


class RecommendIn(FilteredIn):
    model_config = example(userId="u1", solution="popular", numResults=10, filterName="unseen")

    user_id: Id | None = Field(default=None, description="None: a visitor with no history.")
    num_results: int = Field(default=25, ge=1, le=500)
    exclude_seen: bool = Field(default=True, description="Leave out items in the history.")
    context: Context | None = Field(
        default=None, max_length=16, description="Request context, e.g. DEVICE: mobile."
    )
    explain: bool = Field(
        default=False, description="Add each item's reasons (docs/explanations.md)."
    )
    horizon: int = Field(
        default=1, ge=1, le=MAX_HORIZON, strict=True,
        description="Rank for the user's next N actions (a \"next session\" slate): items "
        "likely among the next N. Above 1 only for a sequential version trained with "
        "predictNext >= N (else 422); docs/sequential.md.",
    )  # fmt: skip

    include_intent: bool = Field(
        default=False,
        description="Add the user's predicted intent (next event type, next item's field "
        "values); the solution needs intent heads (docs/sequential.md).",
    )


class RankIn(FilteredIn):
    user_id: Id | None = None
    input_list: list[Id] = Field(min_length=1, max_length=1_000)
    context: Context | None = Field(default=None, max_length=16)
    explain: bool = Field(
        default=False, description="Add each item's reasons (docs/explanations.md)."
    )


class SimilarItemsIn(FilteredIn):
    item_id: Id
    num_results: int = Field(default=25, ge=1, le=500)
    user_id: Id | None = Field(
        default=None, description="Only for filters: the user whose events and profile they read."
    )


class SimilarUsersIn(TargetIn):
    user_id: Id
    num_results: int = Field(default=25, ge=1, le=500)


class UsersForItemIn(FilteredIn):
    item_id: Id | None = None
    attribute: str | None = Field(default=None, description="FIELD=value, e.g. GENRES=Comedy.")
    num_results: int = Field(default=100, ge=1, le=500)


class FilterIn(_Body):
    model_config = example(
        name="unseen", filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")'
    )

    name: str = Field(min_length=1, max_length=63)
    filter_expression: str = Field(min_length=1, description="e.g. EXCLUDE ItemID WHERE …")
    replace: bool = False


class FilterExpressionIn(_Body):
    filter_expression: str = Field(min_length=1)


class FilterOut(TypedDict):
    group: str
    name: str
    filterExpression: str
    parameters: list[str]
    createdAt: int


class FilterList(TypedDict):
    filters: list[FilterOut]


class FilterCheck(TypedDict):
    """A valid expression: its canonical form, parameters and what it filters."""

    filterExpression: str
    parameters: list[str]
    target: Literal["ItemID", "UserID"]


class SolutionOut(TypedDict):
    group: str
    name: str
    recipe: str
    config: dict[str, Any]
    createdAt: int


class SolutionList(TypedDict):
    solutions: list[SolutionOut]


class VersionOut(TypedDict):
    id: str
    group: str
    solution: str
    status: Literal["training", "active", "failed", "gated"]
    recipe: str
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    snapshot: dict[str, Any] | None
    trainSeconds: float | None
    error: str | None
    gatedReason: str | None  # why a schedule's quality gate held this version back
    incremental: dict[str, Any] | None  # grown from "parent" (train --incremental), or "fallback"
    createdAt: float
    updatedAt: float


class VersionList(TypedDict):
    versions: list[VersionOut]


class TrainingStarted(TypedDict):
    solutionVersion: VersionOut
    job: JobOut


class ReasonOut(TypedDict):
    """Why an item was recommended (``explain``): see docs/explanations.md."""

    kind: Literal["history", "metadata", "popularity", "trending", "newest", "promotion", "filter"]
    text: str
    itemId: NotRequired[str]
    share: NotRequired[float]
    field: NotRequired[str]
    value: NotRequired[str]


class ScoredItem(TypedDict):
    itemId: str
    score: float | None
    reasons: NotRequired[list[ReasonOut]]


class ScoredUser(TypedDict):
    userId: str
    score: float | None


class ItemsAnswer(TypedDict):
    recommendationId: str
    solutionVersionId: str
    itemList: list[ScoredItem]
    # includeIntent: head ("eventType", "GENRES") -> its most probable values -> probability
    intent: NotRequired[dict[str, dict[str, float]]]


class UsersAnswer(TypedDict):
    recommendationId: str
    solutionVersionId: str
    userList: list[ScoredUser]


# campaigns -----------------------------------------------------------------------------------
class RulesIn(_Body):
    """The rule engine a campaign serves before a model can."""

    order: Literal["popularity", "trending", "newest"] = "popularity"
    window_days: float = Field(default=7.0, gt=0, le=3650)
    filter: str | None = Field(default=None, alias="filterName")
    filter_values: dict[str, list[str] | str] | None = None


class PrecomputedIn(_Body):
    """A batch job's answers in Redis, served when the campaign's model cannot answer. Fields
    left out take the engine's defaults (``PrecomputedConfig``)."""

    url: str = Field(description="redis://host[:port][/db] or rediss://…")
    key_prefix: str | None = Field(
        default=None, description="Keys are keyPrefix + user id (or item id); default recs:."
    )
    overload_share: float | None = Field(
        default=None, gt=0, le=1,
        description="Answer from Redis while this share of the in-flight limit is busy "
        "(default 0.8); null: only when the model fails.",
    )  # fmt: skip


class CampaignConfigIn(_Body):
    cache_ttl_seconds: float | None = Field(default=None, ge=0, le=86_400)
    min_interactions: int | None = Field(default=None, ge=0)
    rules: RulesIn | None = None
    precomputed: PrecomputedIn | None = Field(
        default=None, description="Set it, or null to remove it (docs/precomputed.md)."
    )

    def engine_config(self) -> dict[str, Any]:
        """Only what the request sets (an update keeps the rest); ``precomputed: null``
        removes the precomputed source."""
        config = self.model_dump(exclude_none=True, by_alias=False, exclude={"precomputed"})
        if "precomputed" in self.model_fields_set:
            given = self.precomputed
            config["precomputed"] = None if given is None else given.model_dump(exclude_unset=True)
        return config


class CampaignIn(_Body):
    model_config = example(name="home", solution="popular", solutionVersionId="latest")

    name: Id
    solution: Id
    solution_version_id: str = Field(
        default="latest", description='A version id, or "latest": the newest active version.'
    )
    config: CampaignConfigIn = CampaignConfigIn()
    replace: bool = False


class CampaignUpdateIn(_Body):
    solution_version_id: str | None = Field(
        default=None, description='Deploy this version (or "latest"); the current one becomes '
        "the rollback target.",
    )  # fmt: skip
    config: CampaignConfigIn | None = None


class PromotionIn(_Body):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    percent_promoted_items: int = Field(ge=1, le=100)
    filter: str = Field(alias="filterName", description="The filter promoted items pass.")
    filter_values: dict[str, list[str] | str] | None = None


class CampaignRecommendIn(_Body):
    model_config = example(userId="u1", numResults=10, filterName="unseen")

    user_id: Id | None = Field(default=None, description="None: a visitor with no history.")
    item_id: Id | None = Field(
        default=None, description="Items like this one (campaigns of similar-items solutions)."
    )
    num_results: int = Field(default=25, ge=1, le=500)
    exclude_seen: bool = True
    filter: str | None = Field(default=None, alias="filterName")
    filter_values: dict[str, list[str] | str] | None = None
    context: Context | None = Field(
        default=None, max_length=16, description="Request context, e.g. DEVICE: mobile."
    )
    promotions: list[PromotionIn] = Field(default_factory=list, max_length=1)
    explain: bool = Field(
        default=False, description="Add each item's reasons (docs/explanations.md)."
    )


class CampaignRankIn(_Body):
    user_id: Id | None = None
    input_list: list[Id] = Field(min_length=1, max_length=1_000)
    filter: str | None = Field(default=None, alias="filterName")
    filter_values: dict[str, list[str] | str] | None = None
    context: Context | None = Field(default=None, max_length=16)
    explain: bool = Field(
        default=False, description="Add each item's reasons (docs/explanations.md)."
    )


class CampaignOut(TypedDict):
    group: str
    name: str
    solution: str
    deployed: str
    previous: str | None
    solutionVersionId: str | None
    source: Literal["model", "rules", "precomputed"]
    config: dict[str, Any]
    createdAt: float
    updatedAt: float


class CampaignList(TypedDict):
    campaigns: list[CampaignOut]


class CampaignItem(TypedDict):
    itemId: str
    score: float | None
    promotionName: NotRequired[str]
    reasons: NotRequired[list[ReasonOut]]


class CampaignAnswer(TypedDict):
    recommendationId: str
    campaign: str
    source: Literal["model", "rules", "precomputed"]
    solutionVersionId: str | None
    itemList: list[CampaignItem]
    cache: Literal["hit", "miss", "off"]


# schedules -----------------------------------------------------------------------------------
class ScheduleIn(_Body):
    """Exactly one trigger: ``every``, ``cron`` or ``afterEvents`` (errors name the field)."""

    name: Id
    solution: Id
    every: str | int | None = Field(
        default=None, description="An interval: 30s, 15m, 1h, 1h30m, 1d (or seconds)."
    )
    cron: str | None = Field(default=None, description="Five cron fields in UTC: '0 3 * * *'.")
    after_events: int | None = Field(
        default=None, description="Retrain once this many interactions arrived since the last run."
    )
    max_train_seconds: float | None = Field(
        default=None, description="A slower training is stopped; the serving version stays."
    )
    max_metric_drop: float | None = Field(
        default=None, description="Hold back (status gated) a version this much below the "
        "serving one on ``metric``.",
    )  # fmt: skip
    metric: str | None = Field(default=None, description="ndcg@10 (default), hr@10, mrr@25, …")
    replace: bool = False
    incremental: bool = Field(
        default=False, description="Grow the serving version with the new events (sequential; "
        "the first run is a full fit) instead of a full retrain.",
    )  # fmt: skip


class ScheduleOut(TypedDict):
    group: str
    name: str
    solution: str
    trigger: Literal["every", "cron", "after-events"]
    description: str
    everySeconds: int | None
    cron: str | None
    afterEvents: int | None
    maxTrainSeconds: float | None
    maxMetricDrop: float | None
    metric: str
    incremental: bool
    paused: bool
    nextRunAt: float | None
    pendingEvents: int | None
    running: bool
    runs: int
    lastRun: dict[str, Any] | None
    createdAt: float
    updatedAt: float


class ScheduleList(TypedDict):
    schedules: list[ScheduleOut]


# reels ---------------------------------------------------------------------------------------
class ClipIn(_Body):
    """One clip of the catalogue (docs/reels.md): timecodes as HH:MM:SS:FF, seconds, 300f, …"""

    title: Id
    clip: int = Field(ge=0, description="The clip's number within its title.")
    source: str = Field(min_length=1, max_length=4096, description="The asset's path or URL.")
    start: str | float
    end: str | float
    duration_class: str | None = Field(default=None, max_length=32)


class ReelIn(FilteredIn):
    user_id: Id
    clips: list[ClipIn] = Field(min_length=1, description="The clip catalogue.")
    seconds: float = Field(default=30.0, gt=0, le=600, description="Length of the reel.")
    cadence: str | None = Field(
        default=None, max_length=260, description="Order of the ranked titles, e.g. ABCADBE."
    )
    fps: str = Field(default="25", max_length=32, description="Rate of the timecodes.")


class ReelTitleOut(TypedDict):
    title: str
    rank: int
    frames: int


# "in" is a keyword: the functional form names it.
ReelClipOut = TypedDict(
    "ReelClipOut",
    {"title": str, "rank": int, "letter": str, "clip": int, "source": str, "in": int,
     "out": int, "frames": int, "inTimecode": str, "outTimecode": str,
     "durationClass": str | None},
)  # fmt: skip


class ReelOut(TypedDict):
    userId: str
    solutionVersionId: str
    recommendationId: str
    fps: str
    frames: int
    seconds: float
    cadence: str
    titles: list[ReelTitleOut]
    clips: list[ReelClipOut]
    timeline: dict[str, Any]  # OpenTimelineIO JSON


# embeddings (issue 17) -----------------------------------------------------------------------
class EmbeddingOut(TypedDict):
    id: str
    vector: list[float]


class EmbeddingsAnswer(TypedDict):
    """Vectors of one version in its space: the same ``spaceId`` means comparable vectors."""

    solutionVersionId: str
    spaceId: str
    dimensions: int
    embeddings: list[EmbeddingOut]
