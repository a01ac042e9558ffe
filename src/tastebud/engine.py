"""The engine: every operation tastebud offers, in one place, for the API, the CLI and tests.

Routes and CLI commands stay thin and call these methods; the engine owns the store, the event
tracker (group commit) and the background job runner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from pydantic import ValidationError

from tastebud.batch import BatchService
from tastebud.embeddings.service import EmbeddingService
from tastebud.errors import AlreadyExists, InvalidInput, PayloadTooLarge
from tastebud.experiments import ExperimentService
from tastebud.features import FeatureService
from tastebud.filters import Filter, Schemas, parse, validate
from tastebud.ingest import EventTracker, ItemIn, PutEventsRequest, UserIn
from tastebud.ingest.validate import events_from_request, records_from_items, records_from_users
from tastebud.jobs.imports import ImportRequest, ImportResult, ProgressFn, run_import
from tastebud.jobs.runner import JobRunner
from tastebud.jobs.scheduler import Scheduler
from tastebud.jobs.schedules import Schedules
from tastebud.jobs.training import SolutionSpec, VersionTrainer
from tastebud.maintenance.swap import finish_interrupted
from tastebud.messaging import MessagingService, engagement_records, split_engagement
from tastebud.reels import ReelService
from tastebud.schema import DATASETS, DatasetKind, DatasetSchema
from tastebud.serving.cache import (
    ANSWERS_FILE,
    AnswerStore,
    FileAnswers,
    LocalAnswers,
    RedisAnswers,
    ResultCache,
)
from tastebud.serving.campaigns import (
    LATEST,
    CampaignConfig,
    CampaignRequest,
    CampaignServer,
    validate_deployment,
)
from tastebud.serving.service import Recommender
from tastebud.settings import Settings
from tastebud.store import (
    CampaignRecord,
    DatasetGroup,
    Event,
    FilterRecord,
    ImportMode,
    JobRecord,
    SolutionRecord,
    SolutionVersionRecord,
    Store,
    TokenRecord,
    WriteResult,
    open_store,
)
from tastebud.store.base import Scope

_log = logging.getLogger(__name__)

_FILTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_SCHEMA_TTL_SECONDS = 2.0  # other processes' schema changes are seen within this delay
EXPORT_SUFFIXES = (".csv", ".parquet")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Engine:
    """tastebud's operations over one store. Thread-safe; close it when done."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        if store is None:
            finish_interrupted(settings.home)  # a restore killed half-way (maintenance/swap.py)
            store = open_store(settings.store_url, limits=settings.store)
        self.store = store
        self.tracker = EventTracker(self.store, max_batch_events=settings.ingest.max_batch_events)
        self.jobs = JobRunner(self.store)
        self.features = FeatureService(self.store, settings)
        self.recommender = Recommender(self.store, settings)
        self.recommender.features = self.features  # the ranker's declared features
        self.cache = ResultCache(self.store, _answer_store(settings),
                                 interval=settings.serving.cache_sync_seconds)  # fmt: skip
        self.campaigns = CampaignServer(self.store, self.recommender, self.cache)
        self.batch = BatchService(self.store, self.recommender, self.jobs, settings)
        self.reels = ReelService(self.store, self.recommender)
        self.embeddings = EmbeddingService(self.recommender)
        self.training = VersionTrainer(self.store, settings.artifacts, features=self.features)
        self.schedules = Schedules(self.store)
        self.messaging = MessagingService(self.store, self.tracker, self.recommender, settings)
        self.experiments = ExperimentService(self.store, self.campaigns, settings.experiments,
                                             default_group=settings.default_group)  # fmt: skip
        self.campaigns.on_answer = self.experiments.metrics.log_answer  # metric attributions
        self.tracker.on_commit.append(self.features.committed)
        # Started by `tastebud serve` and `tastebud worker`, never by other commands.
        self.scheduler = Scheduler(
            self.store, self.training.train_new, self.jobs,
            lease_seconds=settings.schedules.lease_seconds,
            poll_seconds=settings.schedules.poll_seconds, groups=settings.schedules.groups,
            # A new version reaches this process's `latest` campaigns at once.
            on_version=lambda version: self.campaigns.forget(version.group),
        )  # fmt: skip
        self._schemas: dict[tuple[str, str], tuple[float, DatasetSchema]] = {}

    def close(self) -> None:
        self.scheduler.stop()
        self.experiments.close()  # buffered exposures written before the store closes
        self.cache.close()
        self.tracker.close()
        self.features.close()
        self.jobs.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # set-up -----------------------------------------------------------------------------------
    def init(self) -> str | None:
        """Create the default group and, on a store with no token yet, an admin token.

        Idempotent. Returns the new admin token (also saved to ``home/admin.token``, mode 600),
        or None when tokens already exist.
        """
        self.ensure_group(self.settings.default_group)
        if self.store.list_tokens():
            return None
        try:
            token = self.create_token("admin", scope="admin")
        except AlreadyExists:  # another process starting with us made it
            return None
        path = self.settings.home / "admin.token"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(token + "\n", encoding="utf-8")
        os.chmod(path, 0o600)
        return token

    # dataset groups ---------------------------------------------------------------------------
    def create_group(self, name: str) -> DatasetGroup:
        return self.store.create_group(name)

    def ensure_group(self, name: str) -> DatasetGroup:
        try:
            return self.store.create_group(name)
        except AlreadyExists:  # made before, or just now by another process starting with us
            return self.store.get_group(name)

    def get_group(self, name: str) -> DatasetGroup:
        return self.store.get_group(name)

    def list_groups(self) -> list[DatasetGroup]:
        return self.store.list_groups()

    def delete_group(self, name: str) -> None:
        self.store.delete_group(name)
        self._schemas = {k: v for k, v in self._schemas.items() if k[0] != name}

    # schemas ----------------------------------------------------------------------------------
    def put_schema(
        self, group: str, dataset: DatasetKind, fields: Mapping[str, str]
    ) -> DatasetSchema:
        _check_dataset(dataset)
        schema = DatasetSchema.build(dataset, fields)
        self.store.put_schema(group, schema)
        self._schemas[(group, dataset)] = (time.monotonic(), schema)
        return schema

    def get_schema(self, group: str, dataset: DatasetKind) -> DatasetSchema:
        """The declared schema, or the default (reserved fields only) when none is declared."""
        _check_dataset(dataset)
        cached = self._schemas.get((group, dataset))
        if cached and time.monotonic() - cached[0] < _SCHEMA_TTL_SECONDS:
            return cached[1]
        schema = self.store.get_schema(group, dataset) or DatasetSchema.default(dataset)
        self._schemas[(group, dataset)] = (time.monotonic(), schema)
        return schema

    # bulk import ------------------------------------------------------------------------------
    def import_file(
        self,
        group: str,
        dataset: DatasetKind,
        path: Path,
        *,
        mode: ImportMode = "incremental",
        max_error_rate: float | None = None,
        encoding: str = "utf-8",
        on_progress: ProgressFn | None = None,
        job_name: str | None = None,
    ) -> ImportResult:
        """Run an import job in this thread (the CLI shows its progress bar)."""
        request = self._import_request(group, dataset, path, mode, max_error_rate, encoding)
        self._schemas.pop((group, dataset), None)
        name = job_name or f"{group}-{dataset}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        rejects = (self.settings.home / "rejects" / f"{name}.csv").resolve()
        try:
            return run_import(self.store, request, rejects_path=rejects, on_progress=on_progress)
        finally:
            self._schemas.pop((group, dataset), None)

    def start_import(
        self,
        group: str,
        dataset: DatasetKind,
        path: Path,
        *,
        mode: ImportMode = "incremental",
        max_error_rate: float | None = None,
        encoding: str = "utf-8",
        delete_source: bool = False,
    ) -> JobRecord:
        """Queue an import job in the background; poll :meth:`job` for status and progress.

        ``delete_source`` removes the file when the job ends (uploads).
        """
        request = self._import_request(group, dataset, path, mode, max_error_rate, encoding)
        params = {"dataset": dataset, "path": str(path), "mode": mode,
                  "max_error_rate": request.max_error_rate}  # fmt: skip

        def work(job_id: str, progress: ProgressFn) -> Mapping[str, object]:
            try:
                return self.import_file(
                    group, dataset, path, mode=mode, max_error_rate=request.max_error_rate,
                    encoding=encoding, on_progress=progress, job_name=job_id,
                ).to_dict()  # fmt: skip
            finally:
                if delete_source:
                    Path(path).unlink(missing_ok=True)

        self.store.get_group(group)  # fail now, not in the background
        return self.jobs.submit(group=group, kind="import", params=params, fn=work)

    def _import_request(
        self,
        group: str,
        dataset: DatasetKind,
        path: Path,
        mode: str,
        max_error_rate: float | None,
        encoding: str,
    ) -> ImportRequest:
        _check_dataset(dataset)
        if mode not in ("full", "incremental"):
            raise InvalidInput(f"mode: expected 'full' or 'incremental', got {mode!r}")
        rate = self.settings.imports.max_error_rate if max_error_rate is None else max_error_rate
        if not 0.0 <= rate <= 1.0:
            raise InvalidInput(f"max_error_rate: expected a number in [0, 1], got {rate}")
        return ImportRequest(
            group=group, dataset=dataset, path=Path(path), mode=mode,  # type: ignore[arg-type]
            max_error_rate=rate, encoding=encoding, chunk_rows=self.settings.imports.chunk_rows,
        )  # fmt: skip

    def job(self, job_id: str) -> JobRecord:
        return self.jobs.get(job_id)

    def list_jobs(self, group: str) -> list[JobRecord]:
        """Newest first; jobs running in this process show their live progress."""
        return [self.jobs.get(j.id) if j.status in ("queued", "running") else j
                for j in self.store.list_jobs(group)]  # fmt: skip

    # real-time writes -------------------------------------------------------------------------
    def validate_events(self, group: str, request: PutEventsRequest) -> list[Event]:
        limit = self.settings.api.max_events_per_request
        if len(request.event_list) > limit:
            raise PayloadTooLarge(
                f"eventList: {len(request.event_list)} events, at most {limit} per request"
            )
        # Engagement events (`_email.open` …) lose their attribution keys before validation,
        # and are recorded for reports now: idempotent, so a retried request counts once.
        request, attributions = split_engagement(request)
        events = events_from_request(self.get_schema(group, "interactions"), request)
        if attributions:
            self.messaging.record(group, engagement_records(events, attributions))
        return events

    def put_events(self, group: str, request: PutEventsRequest) -> WriteResult:
        """Validate and store events; returns once they are committed."""
        events = self.validate_events(group, request)
        result = self.tracker.put(group, events)
        self.cache.changes.touch(group, _users(events))  # their cached answers are stale now
        return result

    async def put_events_async(self, group: str, request: PutEventsRequest) -> WriteResult:
        events = self.validate_events(group, request)
        result = await self.tracker.submit_async(group, events)
        self.cache.changes.touch(group, _users(events))
        return result

    def put_items(self, group: str, items: Sequence[ItemIn]) -> int:
        records = records_from_items(self.get_schema(group, "items"), items)
        return self.store.put_records(group, "items", records)

    def put_users(self, group: str, users: Sequence[UserIn]) -> int:
        records = records_from_users(self.get_schema(group, "users"), users)
        return self.store.put_records(group, "users", records)

    def recent_events(self, group: str, user_id: str, limit: int = 100) -> list[Event]:
        return self.store.recent_events(group, user_id, limit)

    # export, deletion, status -----------------------------------------------------------------
    def export(self, group: str, dataset: DatasetKind, path: Path) -> int:
        """Write a dataset to ``.csv`` or ``.parquet`` (streamed); returns rows written."""
        _check_dataset(dataset)
        suffix = path.suffix.lower()
        if suffix not in EXPORT_SUFFIXES:
            raise InvalidInput(f"{path}: export to {' or '.join(EXPORT_SUFFIXES)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        rows = 0
        writer: pq.ParquetWriter | None = None
        with open(partial, "wb") as out:
            for chunk in self.store.export(group, dataset):
                if suffix == ".csv":
                    chunk.write_csv(out, include_header=rows == 0)
                else:
                    table = chunk.to_arrow()
                    writer = writer or pq.ParquetWriter(out, table.schema)
                    writer.write_table(table)
                rows += chunk.height
            if writer is not None:
                writer.close()
        if rows == 0:  # still give the file its columns
            # The same column types as a full export: numbers Float64, timestamps Int64.
            dtypes = {"numerical": pl.Float64, "timestamp": pl.Int64}
            types = self.get_schema(group, dataset).types
            empty = pl.DataFrame(
                schema={name: dtypes.get(type_, pl.String) for name, type_ in types.items()}
            )
            empty.write_csv(partial) if suffix == ".csv" else empty.write_parquet(partial)
        partial.replace(path)  # readers never see a half-written export
        return rows

    def delete_users(self, group: str, user_ids: Sequence[str]) -> int:
        """Erase users (profile, interactions, sessions, id). Returns how many existed."""
        if not user_ids:
            raise InvalidInput("user_ids: give at least one user id")
        deleted = self.store.delete_users(group, list(user_ids))
        self.recommender.forget_loaded()  # loaded versions must stop answering erased users
        _log.info("users deleted group=%s requested=%d found=%d", group, len(user_ids), deleted)
        return deleted

    def counts(self, group: str) -> dict[str, int]:
        return self.store.counts(group)

    # solutions and training -------------------------------------------------------------------
    def create_solution(
        self, group: str, name: str, body: Mapping[str, Any], *, replace: bool = False
    ) -> SolutionRecord:
        """Declare a solution: ``{"recipe": ..., "params": {...}, "data": {...}, "hpo": ...}``.

        Raises:
            InvalidInput: unknown recipe, bad hyperparameter or data option (named).
        """
        if not name or len(name) > 63 or not name.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"solution name {name!r}: use 1-63 letters, digits, '-' or '_'")
        spec = SolutionSpec.parse(dict(body))
        record = SolutionRecord(group=group, name=name, recipe=spec.recipe,
                                body=spec.model_dump(exclude_none=True))  # fmt: skip
        self.store.put_solution(record, replace=replace)
        return self.store.get_solution(group, name)

    def get_solution(self, group: str, name: str) -> SolutionRecord:
        return self.store.get_solution(group, name)

    def list_solutions(self, group: str) -> list[SolutionRecord]:
        return self.store.list_solutions(group)

    def delete_solution(self, group: str, name: str) -> None:
        self.store.delete_solution(group, name)

    def train(
        self, group: str, solution: str, *, seed: int = 0, on_progress: ProgressFn | None = None,
        incremental: bool = False, full_fallback: bool = False,
    ) -> SolutionVersionRecord:  # fmt: skip
        """Train a new version of ``solution`` in this thread; returns it once active.
        ``incremental``: grow the active version instead of fitting from scratch."""
        return self.training.train_new(
            group, solution, seed=seed, progress=on_progress, incremental=incremental,
            full_fallback=full_fallback,
        )  # fmt: skip

    def start_training(
        self, group: str, solution: str, *, seed: int = 0, incremental: bool = False,
        full_fallback: bool = False,
    ) -> tuple[SolutionVersionRecord, JobRecord]:  # fmt: skip
        """Queue training in the background: the new version (status ``training``) and its job."""
        growth = (self.training.growth(group, solution, full_fallback=full_fallback)
                  if incremental else None)  # fmt: skip
        version = self.training.create(group, solution)

        def work(job_id: str, progress: ProgressFn) -> Mapping[str, object]:
            done = self.training.train(version, seed=seed, progress=progress, job_id=job_id,
                                       growth=growth)  # fmt: skip
            return {"solution_version": done.id, **done.body}

        params = {"solution": solution, "solution_version": version.id, "seed": seed,
                  "incremental": incremental}  # fmt: skip
        job = self.jobs.submit(group=group, kind="training", params=params, fn=work)
        return version, job

    def solution_version(self, version_id: str) -> SolutionVersionRecord:
        return self.store.get_solution_version(version_id)

    def list_solution_versions(
        self, group: str, solution: str | None = None
    ) -> list[SolutionVersionRecord]:
        return self.store.list_solution_versions(group, solution)

    # filters ----------------------------------------------------------------------------------
    def validate_filter(self, group: str, expression: str) -> Filter:
        """Parse ``expression`` and check it against the group's schemas; returns its tree.

        Raises:
            FilterSyntaxError: it does not parse (the message names the column).
            InvalidInput: unknown field, wrong types, a broken rule or limit (named).
        """
        tree = parse(expression)
        schemas = Schemas(items=self.get_schema(group, "items"),
                          users=self.get_schema(group, "users"))  # fmt: skip
        validate(tree, schemas)
        return tree

    def create_filter(
        self, group: str, name: str, expression: str, *, replace: bool = False
    ) -> FilterRecord:
        """Save a named filter after validating it (AlreadyExists unless ``replace``)."""
        if not _FILTER_NAME.fullmatch(name):
            raise InvalidInput(
                f"filter name {name!r}: use 1-63 letters, digits, '-' or '_', starting with a "
                "letter or digit"
            )
        self.validate_filter(group, expression)
        record = FilterRecord(group=group, name=name, expression=expression,
                              created_at=int(time.time()))  # fmt: skip
        self.store.put_filter(record, replace=replace)
        self.recommender.filters.forget(group, name)
        return self.store.get_filter(group, name)

    def get_filter(self, group: str, name: str) -> FilterRecord:
        return self.store.get_filter(group, name)

    def list_filters(self, group: str) -> list[FilterRecord]:
        return self.store.list_filters(group)

    def delete_filter(self, group: str, name: str) -> None:
        self.store.delete_filter(group, name)
        self.recommender.filters.forget(group, name)

    # campaigns --------------------------------------------------------------------------------
    def create_campaign(
        self, group: str, name: str, solution: str, *, version: str = LATEST,
        config: Mapping[str, Any] | None = None, replace: bool = False,
    ) -> CampaignRecord:  # fmt: skip
        """Deploy ``version`` of ``solution`` (``"latest"``: its newest active version, followed
        as new ones are trained; while none exists, the rule engine answers).

        Raises:
            NotFound: no such solution, version or rules filter.
            InvalidInput: a bad name, a version that is not active, a bad config (named).
        """
        if not _FILTER_NAME.fullmatch(name):
            raise InvalidInput(f"campaign name {name!r}: use 1-63 letters, digits, '-' or '_'")
        settings = self._campaign_config(group, config or {})
        validate_deployment(self.store, group, solution, version)
        self._warm(group, solution, version)
        record = CampaignRecord(group=group, name=name, solution=solution, deployed=version,
                                config=settings.model_dump())  # fmt: skip
        self.store.put_campaign(record, replace=replace)
        self.campaigns.forget(group, name)
        return self.store.get_campaign(group, name)

    def update_campaign(
        self, group: str, name: str, *, version: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> CampaignRecord:  # fmt: skip
        """Deploy another version (the current one becomes the rollback target) and/or change
        settings. The new version is loaded before the switch, so no request fails."""
        current = self.store.get_campaign(group, name)
        record = current
        if version is not None and version != current.deployed:
            validate_deployment(self.store, group, current.solution, version)
            self._warm(group, current.solution, version)
            record = dataclasses.replace(record, deployed=version, previous=current.deployed)
        if config:
            merged = self._campaign_config(group, dict(current.config) | dict(config))
            record = dataclasses.replace(record, config=merged.model_dump())
        self.store.put_campaign(record, replace=True)
        self.campaigns.forget(group, name)
        return self.store.get_campaign(group, name)

    def rollback_campaign(self, group: str, name: str) -> CampaignRecord:
        """Swap the deployment with the previous one (rolling back twice restores it)."""
        current = self.store.get_campaign(group, name)
        if current.previous is None:
            raise InvalidInput(f"campaign {name!r} has no previous deployment to roll back to")
        return self.update_campaign(group, name, version=current.previous)

    def get_campaign(self, group: str, name: str) -> CampaignRecord:
        return self.store.get_campaign(group, name)

    def list_campaigns(self, group: str) -> list[CampaignRecord]:
        return self.store.list_campaigns(group)

    def describe_campaign(self, group: str, name: str) -> dict[str, Any]:
        """The record plus what answers now: the version and the source (model or rules;
        precomputed while the version cannot be loaded and the campaign has such a source)."""
        self.campaigns.forget(group, name)
        deployment = self.campaigns.deployment(group, name)
        try:
            source: str = self.campaigns.source(group, deployment)[0]
        except Exception:
            if deployment.config.precomputed is None:
                raise
            source = "precomputed"
        return {"campaign": deployment.record, "solution_version_id": deployment.version_id,
                "source": source}  # fmt: skip

    def delete_campaign(self, group: str, name: str) -> None:
        self.store.delete_campaign(group, name)
        self.campaigns.forget(group, name)

    def campaign_answer(self, group: str, name: str, request: CampaignRequest) -> dict[str, Any]:
        """The campaign's answer for one request (see :class:`CampaignServer`)."""
        return self.campaigns.recommend(group, name, request)

    def _campaign_config(self, group: str, config: Mapping[str, Any]) -> CampaignConfig:
        try:
            settings = CampaignConfig.model_validate(dict(config))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            got = first.get("input")
            shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
            raise InvalidInput(f"config.{where}: {first['msg']}{shown}") from None
        if settings.rules.filter is not None:
            self.store.get_filter(group, settings.rules.filter)  # NotFound names it
        return settings

    def _warm(self, group: str, solution: str, version: str) -> None:
        """Load the version a deployment names, so its first request is not the one that
        pays for loading it (and a broken artifact fails the deployment, not requests)."""
        if version == LATEST:
            active = [v for v in self.store.list_solution_versions(group, solution)
                      if v.status == "active"]  # fmt: skip
            if not active:
                return
            version = active[0].id
        self.recommender.versions.get(version)

    # tokens -----------------------------------------------------------------------------------
    def create_token(self, name: str, *, scope: Scope) -> str:
        if scope not in ("admin", "recommend", "ingest"):
            raise InvalidInput(f"scope: expected 'admin', 'recommend' or 'ingest', got {scope!r}")
        token = f"tb_{secrets.token_urlsafe(32)}"
        self.store.add_token(hash_token(token), name=name, scope=scope)
        return token

    def authenticate(self, token: str) -> TokenRecord | None:
        configured = self.settings.api.admin_token
        if configured and hmac.compare_digest(token.encode(), configured.encode()):
            return TokenRecord(name="configured-admin", scope="admin", created_at=0)
        return self.store.find_token(hash_token(token))

    def list_tokens(self) -> list[TokenRecord]:
        return self.store.list_tokens()

    def revoke_token(self, name: str) -> None:
        self.store.revoke_token(name)


def _users(events: Sequence[Event]) -> set[str]:
    return {e.user_id for e in events if e.user_id}


def _answer_store(settings: Settings) -> AnswerStore:
    """Shared answers through Redis when configured (several workers), or through a file for
    the embedded workers of one home, else this process's."""
    local = LocalAnswers(capacity=settings.serving.cached_answers)
    if settings.redis_url:
        return RedisAnswers(settings.redis_url, local=local)
    if settings.serving.shared_answers:
        return FileAnswers(settings.home / ANSWERS_FILE, local=local)
    return local


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise InvalidInput(f"dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
