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
from tastebud.schema import MAX_ID_LENGTH, DatasetKind, FieldType

ImportMode = Literal["full", "incremental"]
ExportFormat = Literal["csv", "parquet"]
TokenScope = Literal["admin", "ingest"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
_V = TypeVar("_V")


def camel_keys(values: Mapping[str, _V]) -> dict[str, _V]:
    """``{"max_error_rate": 0.1}`` -> ``{"maxErrorRate": 0.1}`` (engine dicts on the wire)."""
    return {to_camel(key): value for key, value in values.items()}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


# requests ------------------------------------------------------------------------------------
class GroupIn(_Body):
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
