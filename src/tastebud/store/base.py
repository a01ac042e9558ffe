"""The storage protocol: one interface, implemented by SQLite (embedded) and PostgreSQL.

Data arrive validated (see :mod:`tastebud.schema`) with external ids; the store maps ids to dense
indexes once (``id_map``) and keeps interactions as integer columns, so training reads arrays.
Every write is one transaction: it is all there after commit, or none of it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from tastebud.ids import Vocabulary
from tastebud.schema import DatasetKind, DatasetSchema

if TYPE_CHECKING:
    from tastebud.store.listen import TailListener

ImportMode = Literal["full", "incremental"]
EntityKind = Literal["user", "item"]
Scope = Literal["admin", "recommend", "ingest"]


@dataclass(frozen=True, slots=True)
class DatasetGroup:
    id: int
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Event:
    """One validated interaction with external ids (``user_id`` is None for anonymous events)."""

    item_id: str
    timestamp: int
    user_id: str | None = None
    session_id: str | None = None
    event_type: str | None = None
    event_value: float | None = None
    event_id: str | None = None
    recommendation_id: str | None = None
    impression: str | None = None
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One item or user row: its id and its validated metadata fields."""

    id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    creation_timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    accepted: int
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A background job (import, export, training …) as stored for status queries."""

    id: str
    group: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    params: Mapping[str, Any]
    progress: float = 0.0
    result: Mapping[str, Any] | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SolutionRecord:
    """A recipe plus its configuration (``body``: params, data config, HPO), by name."""

    group: str
    name: str
    recipe: str
    body: Mapping[str, Any]
    created_at: int = 0


# "gated": trained, but held back by a schedule's quality gate (``body["gated"]`` says why);
# only "active" versions ever answer.
VersionStatus = Literal["training", "active", "failed", "gated"]


@dataclass(frozen=True, slots=True)
class SolutionVersionRecord:
    """One training of a solution; ``body`` holds metrics, data snapshot, timings, errors."""

    id: str
    group: str
    solution: str
    status: VersionStatus
    body: Mapping[str, Any]
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class FilterRecord:
    """A named filter expression (validated against the group's schemas when created)."""

    group: str
    name: str
    expression: str
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """A deployed solution: ``deployed`` is a version id, or ``"latest"`` (the solution's newest
    active version, followed as new ones are trained); ``previous`` is what rollback restores.
    ``config`` holds the cache TTL, the rule-engine fallback and its threshold."""

    group: str
    name: str
    solution: str
    deployed: str
    previous: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """When to retrain a solution (``spec``: trigger and options, see
    :class:`tastebud.jobs.schedules.ScheduleSpec`) and where its runs stand.

    ``runs`` counts finished runs: a claim names the count it saw, so a run done meanwhile by
    another worker is never done again. A claim holds a lease (``lease_owner`` until
    ``lease_until``) that a live worker renews; once it expires another worker may take over.
    """

    group: str
    name: str
    solution: str
    spec: Mapping[str, Any]
    paused: bool = False
    next_run_at: float | None = None  # time triggers; None for event triggers
    seq_watermark: int = 0  # event triggers count interactions that arrived after this seq
    runs: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    job_id: str | None = None  # the run in progress (or the last one)
    last_run: Mapping[str, Any] | None = None  # at, outcome, job, version, seconds, message
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message to send (issue 16): audience, templates, channel … in ``body`` (see
    :class:`tastebud.messaging.spec.MessageSpec`)."""

    group: str
    name: str
    body: Mapping[str, Any]
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """Where one (message, user) stands: ``sending`` (claimed), ``sent``, ``failed``
    (permanent), ``pending`` (transient errors exhausted: the next run tries again) or
    ``skipped`` (no address). ``detail`` says why, and notes a draft replaced by the template."""

    message: str
    user_id: str
    message_id: str
    treatment: str
    status: str
    attempts: int = 0
    detail: Mapping[str, Any] | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class EngagementRecord:
    """One engagement event attributed to its campaign (or journey), activity and treatment.

    ``dedup_key`` is unique per group: a replayed event is stored once. ``message_key`` names
    the message it is about (its ``messageId``, or the endpoint and attribution of an app
    event), which makes unique opens and clicks countable. ``category`` is one of ``send``,
    ``delivery``, ``open``, ``click``, ``bounce``, ``complaint``, ``unsubscribe``, ``failure``.
    """

    dedup_key: str
    message_key: str
    campaign: str
    activity: str
    treatment: str
    kind: Literal["campaign", "journey"]
    category: str
    event_type: str
    timestamp: float
    user_id: str | None = None
    url: str | None = None
    machine: bool = False


@dataclass(frozen=True, slots=True)
class EngagementCount:
    """Engagement events of one message in one category, for reports."""

    activity: str
    treatment: str
    category: str
    message_key: str
    total: int
    human: bool  # at least one of them was not a likely machine


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """An A/B test between campaigns (issue 15): ``body`` holds its arms, metric and
    attribution window (see :class:`tastebud.experiments.spec.ExperimentSpec`); ``state``
    goes draft -> running -> stopped."""

    group: str
    name: str
    body: Mapping[str, Any]
    state: Literal["draft", "running", "stopped"] = "draft"
    started_at: float | None = None
    stopped_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ExposureRecord:
    """One answer of an experiment: which arm and campaign gave the user what (``items``:
    the item ids shown, ``|``-joined), when (epoch seconds)."""

    experiment: str
    arm: str
    user_id: str
    recommendation_id: str
    campaign: str
    source: str
    timestamp: float
    items: str


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One campaign answer, logged for metric attributions: its source (model, rules,
    precomputed) and the promotion that placed ``promoted_items`` (``|``-joined), if any."""

    recommendation_id: str
    campaign: str
    source: str
    timestamp: float
    items: str
    user_id: str | None = None
    promotion: str | None = None
    promoted_items: str | None = None


@dataclass(frozen=True, slots=True)
class MetricAttributionRecord:
    """A metric over events of one type (``SUM(Items.FIELD)`` or ``SAMPLECOUNT()``), reported
    per recommendation source."""

    group: str
    name: str
    event_type: str
    expression: str
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    scope: Scope
    created_at: int


class BulkWriter(Protocol):
    """Streams chunks of one import into one open transaction."""

    def write(self, chunk: pl.DataFrame) -> int:
        """Write validated rows (canonical column names); returns rows stored (after dedup).

        Big chunks may be held back for one sorted load: those count in :meth:`finish`."""
        ...

    def finish(self) -> int:
        """Store the rows held back (also done when the transaction ends); returns rows stored."""
        ...


class Store(Protocol):
    """Everything tastebud persists. SQL lives only in implementations of this protocol."""

    url: str

    def migrate(self) -> int:
        """Apply pending schema migrations; returns the schema version now in force.

        Raises:
            TastebudError: the store was written by a newer tastebud (its version is newer than
                :data:`~tastebud.store.migrations.LATEST`); nothing is changed.
        """
        ...

    def schema_version(self) -> int:
        """The newest migration applied (0: a new, empty store); never migrates."""
        ...

    def close(self) -> None: ...

    def tail_listener(self, on_new: Callable[[], None]) -> TailListener | None:
        """Call ``on_new`` from a thread of its own after interactions are added, until the
        listener is closed (None: this store cannot tell; its tail is polled)."""
        ...

    # dataset groups ---------------------------------------------------------------------------
    def create_group(self, name: str) -> DatasetGroup: ...
    def get_group(self, name: str) -> DatasetGroup: ...
    def list_groups(self) -> list[DatasetGroup]: ...
    def delete_group(self, name: str) -> None: ...

    # schemas ----------------------------------------------------------------------------------
    def put_schema(self, group: str, schema: DatasetSchema) -> None: ...
    def get_schema(self, group: str, dataset: DatasetKind) -> DatasetSchema | None: ...

    # writes -----------------------------------------------------------------------------------
    def bulk_writer(
        self, group: str, dataset: DatasetKind, mode: ImportMode
    ) -> AbstractContextManager[BulkWriter]:
        """A transaction for one import job; FULL clears the dataset first. Rolls back on error."""
        ...

    def put_events(self, group: str, events: Sequence[Event]) -> WriteResult:
        """Store events in one transaction; an ``event_id`` already stored is skipped.

        Anonymous events (``user_id`` None) are kept under their ``session_id`` and given the
        user once an event carries both the session and the user.
        """
        ...

    def put_event_batches(
        self, group: str, batches: Sequence[Sequence[Event]]
    ) -> list[WriteResult]:
        """Several requests' events in one transaction (group commit), a result per batch."""
        ...

    def put_records(self, group: str, dataset: DatasetKind, records: Sequence[Record]) -> int:
        """Insert or replace items or users (whole rows) in one transaction."""
        ...

    def delete_users(self, group: str, user_ids: Sequence[str]) -> int:
        """Erase users: profile, interactions, sessions and id mapping. Returns users found."""
        ...

    # reads ------------------------------------------------------------------------------------
    def counts(self, group: str) -> dict[str, int]: ...
    def vocabulary(self, group: str, kind: EntityKind) -> Vocabulary: ...
    def vocabulary_size(self, group: str, kind: EntityKind) -> int:
        """Indexes assigned so far (deleted slots included): one row, no id read."""
        ...

    def read_interactions(self, group: str, *, up_to_seq: int | None = None) -> pl.DataFrame:
        """Identified interactions in arrival order: ``user_index, item_index, timestamp,
        event_type, event_value, impression`` (those stored at or before ``up_to_seq``)."""
        ...

    def last_seq(self, group: str) -> int:
        """The arrival number of the group's newest interaction (0 when there is none)."""
        ...

    def newest_seq(self) -> int:
        """The arrival number of the store's newest interaction, of any group (0: none)."""
        ...

    def count_arrived(self, group: str, after_seq: int, up_to_seq: int) -> int:
        """How many of the group's interactions arrived after ``after_seq`` and at or before
        ``up_to_seq`` (arrival numbers are shared by all groups)."""
        ...

    def interactions_after(self, group: str, seq: int, *, limit: int) -> pl.DataFrame:
        """Interactions that arrived after ``seq``, oldest first, at most ``limit``:
        ``seq, item_index, timestamp, event_type, event_value`` (live updates of models)."""
        ...

    def recent_events(self, group: str, user_id: str, limit: int) -> list[Event]:
        """The user's latest events, newest last (the real-time path)."""
        ...

    def latest_interactions(self, group: str, user_ids: Sequence[str], limit: int) -> pl.DataFrame:
        """The events :meth:`recent_events` reads, for many users at once, as columns (batch
        scoring): ``user_id, item_index, timestamp, event_type, event_value``, each user's
        oldest first; users with no events are left out."""
        ...

    def seen_items(self, group: str, user_ids: Sequence[str]) -> pl.DataFrame:
        """Every item each user ever interacted with, each once, whatever the age (seen-item
        exclusion beyond the events a request reads): ``user_id, item_index``, sorted by user,
        then item; users with no events are left out."""
        ...

    def seen_item_indexes(self, group: str, user_id: str) -> npt.NDArray[np.int32]:
        """:meth:`seen_items` of one user as the store's item indexes, unsorted (the real-time
        path: no frame built per request); empty for a user (or group) with no events."""
        ...

    def recent_events_of(
        self, group: str, user_ids: Sequence[str], limit: int
    ) -> dict[str, list[Event]]:
        """:meth:`recent_events` of many users in one query (batch jobs); users with no
        events are left out."""
        ...

    def export(self, group: str, dataset: DatasetKind) -> Iterator[pl.DataFrame]:
        """The dataset with external ids and schema columns, in chunks."""
        ...

    # jobs and tokens --------------------------------------------------------------------------
    def save_job(self, job: JobRecord) -> None: ...
    def get_job(self, job_id: str) -> JobRecord: ...
    def list_jobs(self, group: str, limit: int = 50) -> list[JobRecord]: ...

    # solutions and their versions
    def put_solution(self, solution: SolutionRecord, *, replace: bool = False) -> None:
        """Create (or with ``replace``, overwrite) a solution; AlreadyExists otherwise."""
        ...

    def get_solution(self, group: str, name: str) -> SolutionRecord: ...
    def list_solutions(self, group: str) -> list[SolutionRecord]: ...
    def delete_solution(self, group: str, name: str) -> None: ...
    def save_solution_version(self, version: SolutionVersionRecord) -> None: ...
    def get_solution_version(self, version_id: str) -> SolutionVersionRecord: ...
    def list_solution_versions(
        self, group: str, solution: str | None = None
    ) -> list[SolutionVersionRecord]:
        """Newest first."""
        ...

    # filters
    def put_filter(self, record: FilterRecord, *, replace: bool = False) -> None:
        """Create (or with ``replace``, overwrite) a filter; AlreadyExists otherwise."""
        ...

    def get_filter(self, group: str, name: str) -> FilterRecord: ...
    def list_filters(self, group: str) -> list[FilterRecord]: ...
    def delete_filter(self, group: str, name: str) -> None: ...

    # campaigns
    def put_campaign(self, record: CampaignRecord, *, replace: bool = False) -> None:
        """Create (or with ``replace``, overwrite) a campaign; AlreadyExists otherwise."""
        ...

    def get_campaign(self, group: str, name: str) -> CampaignRecord: ...
    def list_campaigns(self, group: str) -> list[CampaignRecord]: ...
    def delete_campaign(self, group: str, name: str) -> None: ...

    # schedules (see ScheduleRecord for the claim protocol)
    def put_schedule(self, record: ScheduleRecord, *, replace: bool = False) -> None:
        """Create (or with ``replace``, overwrite) a schedule; AlreadyExists otherwise."""
        ...

    def get_schedule(self, group: str, name: str) -> ScheduleRecord: ...
    def list_schedules(self, group: str) -> list[ScheduleRecord]: ...
    def delete_schedule(self, group: str, name: str) -> None: ...

    def set_schedule_paused(
        self, group: str, name: str, *, paused: bool, next_run_at: float | None
    ) -> ScheduleRecord:
        """Pause or resume (with the next run time from now); returns the updated record."""
        ...

    def due_schedules(
        self, now: float, *, groups: Sequence[str] | None = None
    ) -> list[ScheduleRecord]:
        """Unpaused schedules with no live lease whose time has come (``next_run_at <= now``),
        and every such event-triggered one (the caller counts their new interactions)."""
        ...

    def claim_schedule(
        self, group: str, name: str, *, runs: int, owner: str, now: float, lease_until: float
    ) -> ScheduleRecord | None:
        """Take the lease of a due run in one atomic conditional update: only while the
        schedule is unpaused, due, has finished ``runs`` runs and holds no live lease.

        Returns the record as it was before the claim (an expired lease names the worker that
        lost it), or None when another worker has the run or it is no longer due."""
        ...

    def renew_schedule_lease(
        self, group: str, name: str, *, owner: str, lease_until: float, job_id: str | None = None
    ) -> bool:
        """Extend ``owner``'s lease (and note the run's job); False when it no longer holds it."""
        ...

    def finish_schedule_run(
        self, group: str, name: str, *, owner: str, next_run_at: float | None,
        seq_watermark: int, last_run: Mapping[str, Any],
    ) -> bool:  # fmt: skip
        """Record a finished run (``runs`` + 1) and free the lease; False when ``owner`` had
        lost the lease (nothing is changed then)."""
        ...

    def release_schedule(
        self, group: str, name: str, *, owner: str, last_run: Mapping[str, Any]
    ) -> bool:
        """Free the lease without counting a run (an interrupted run is done again)."""
        ...

    def interactions_after_count(self, group: str, seq: int, *, cap: int) -> int:
        """How many of the group's interactions arrived after ``seq``, counting up to ``cap``."""
        ...

    def item_stats(self, group: str, *, since: int | None = None) -> pl.DataFrame:
        """Every item of the group: ``item_index, interactions`` (counted from ``since``, epoch
        seconds, when given) and ``creation_ts`` (null if unknown): what rules rank by."""
        ...

    def interaction_count(self, group: str, *, cap: int) -> int:
        """How many interactions the group holds, counting no further than ``cap`` (cheap on
        a large group: "are there at least ``cap``?")."""
        ...

    def users_after(self, group: str, seq: int, *, limit: int) -> list[tuple[int, str]]:
        """``(seq, user id)`` of identified interactions that arrived after ``seq``, oldest
        first: whose cached answers a new event makes stale."""
        ...

    def get_user(self, group: str, user_id: str) -> Record | None:
        """One user's profile (the ``CurrentUser`` of filters); None when it has none."""
        ...

    def get_item(self, group: str, item_id: str) -> Record | None:
        """One item's metadata (message content); None when it has none."""
        ...

    # messages and engagement (issue 16)
    def put_message(self, record: MessageRecord) -> None:
        """Create a message; AlreadyExists when the name is taken."""
        ...

    def get_message(self, group: str, name: str) -> MessageRecord: ...
    def list_messages(self, group: str) -> list[MessageRecord]: ...

    def delete_message(self, group: str, name: str) -> None:
        """Remove a message and its delivery rows (its engagement events stay for reports)."""
        ...

    def claim_delivery(
        self, group: str, message: str, user_id: str, *, message_id: str, treatment: str,
        stale_before: float,
    ) -> bool:  # fmt: skip
        """Take (message, user) for sending: True when no row existed, or it was ``pending``,
        or ``sending`` since before ``stale_before`` (a crashed run); False when it was sent,
        failed for good, skipped, or another sender holds it."""
        ...

    def finish_delivery(
        self, group: str, message: str, user_id: str, *, status: str, attempts: int,
        detail: Mapping[str, Any] | None,
    ) -> None: ...  # fmt: skip

    def list_deliveries(self, group: str, message: str) -> list[DeliveryRecord]: ...

    def put_engagement(self, group: str, records: Sequence[EngagementRecord]) -> int:
        """Store engagement events in one transaction, each ``dedup_key`` once; returns how
        many were new."""
        ...

    def engagement_counts(self, group: str, campaign: str) -> list[EngagementCount]:
        """The campaign's (or journey's) events counted per activity, treatment, category
        and message."""
        ...

    def opted_out(self, group: str, user_id: str, event_types: Sequence[str]) -> bool:
        """Whether the user has an engagement event of one of these types (unsubscribes)."""
        ...

    # experiments, exposures, logged answers and metric attributions (issue 15)
    def put_experiment(self, record: ExperimentRecord) -> None:
        """Create an experiment (state draft); AlreadyExists when the name is taken."""
        ...

    def get_experiment(self, group: str, name: str) -> ExperimentRecord: ...
    def list_experiments(self, group: str) -> list[ExperimentRecord]: ...

    def delete_experiment(self, group: str, name: str) -> None:
        """Remove an experiment and its exposures."""
        ...

    def transition_experiment(
        self, group: str, name: str, *, to: str, allowed_from: Sequence[str], at: float
    ) -> ExperimentRecord:
        """Move to state ``to`` (stamping ``started_at``/``stopped_at`` with ``at``) in one
        conditional update; InvalidInput naming the current state when it is not one of
        ``allowed_from``."""
        ...

    def put_exposures(self, group: str, records: Sequence[ExposureRecord]) -> int:
        """Append exposures in one transaction; returns how many."""
        ...

    def put_answers(self, group: str, records: Sequence[AnswerRecord]) -> int:
        """Store logged answers in one transaction, each recommendation id once; returns how
        many were new."""
        ...

    def read_exposures(self, group: str, experiment: str | None = None) -> pl.DataFrame:
        """Exposures of one experiment (or of all), what reports need of them: ``experiment,
        arm, user_id, recommendation_id, timestamp`` (in no particular order)."""
        ...

    def read_answers(self, group: str) -> pl.DataFrame:
        """Logged campaign answers: ``recommendation_id, campaign, source, user_id, timestamp,
        promotion, promoted_items``."""
        ...

    def read_outcomes(
        self, group: str, *, event_type: str | None, since: float, until: float,
        with_items: bool = False,
    ) -> pl.DataFrame:  # fmt: skip
        """Identified interactions with ``since <= TIMESTAMP <= until`` (of one type, unless
        None): ``user_id, timestamp, event_value, recommendation_id`` (and ``item_id``), in no
        particular order."""
        ...

    def put_metric_attribution(self, record: MetricAttributionRecord) -> None:
        """Create one; AlreadyExists when the name is taken."""
        ...

    def get_metric_attribution(self, group: str, name: str) -> MetricAttributionRecord: ...
    def list_metric_attributions(self, group: str) -> list[MetricAttributionRecord]: ...
    def delete_metric_attribution(self, group: str, name: str) -> None: ...

    # features (issue 15)
    def put_feature_set(self, group: str, body: Mapping[str, Any]) -> int:
        """Store a new version of the group's feature declaration; returns its number."""
        ...

    def get_feature_set(
        self, group: str, version: int | None = None
    ) -> tuple[int, dict[str, Any], float] | None:
        """(version, body, created_at) of a version (default: the latest); None if none."""
        ...

    def feature_set_version(self, group: str) -> int:
        """The latest declaration's version (0 when none)."""
        ...

    def feature_events(
        self, group: str, *, after_seq: int = 0, since_ts: int | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:  # fmt: skip
        """Interactions that arrived after ``after_seq`` with ``TIMESTAMP >= since_ts``, in
        arrival order, with external ids: ``seq, user, item, ts, event_type, event_value,
        session, context``."""
        ...

    def put_feature_values(
        self, group: str, feature: str, values: pl.DataFrame, *, computed_at: float
    ) -> int:
        """Replace a batch feature's values (``entity``, ``value``); returns rows stored."""
        ...

    def feature_values(self, group: str, features: Sequence[str]) -> pl.DataFrame:
        """Stored batch values: ``feature, entity, value``."""
        ...

    def feature_computations(self, group: str) -> dict[str, tuple[float, int]]:
        """Batch feature -> (computed at, entities) of its latest computation."""
        ...

    def claim_feature_run(self, group: str, *, due_before: float, now: float) -> bool:
        """Take the group's batch feature run if the last began before ``due_before``."""
        ...

    def add_token(self, token_hash: str, *, name: str, scope: Scope) -> None: ...
    def find_token(self, token_hash: str) -> TokenRecord | None: ...
    def list_tokens(self) -> list[TokenRecord]: ...
    def revoke_token(self, name: str) -> None: ...
