"""Python client of the tastebud HTTP API: one typed method per endpoint.

    with Client("http://127.0.0.1:8765", token="tb_…", group="shop") as client:
        client.put_events([{"itemId": "42", "eventType": "click"}], user_id="u1")

Responses are the API's JSON (camelCase keys), typed by :mod:`tastebud.api.models`. Failures
raise tastebud's own exceptions, one per error ``type`` of the API (the body's
``{"error": {"type", "message"}}``), carrying the server's message (docs/api.md):

    TastebudError              base; also any other HTTP error (a proxy's 502, say)
    ├── InvalidInput           422
    │   ├── FilterSyntaxError  422
    │   ├── PayloadTooLarge    413
    │   └── JobFailed          a job that ended in failure (``.job`` holds it; not HTTP)
    │       └── ImportFailed   an import job that failed
    ├── Forbidden              403 (the token lacks the scope)
    │   └── Unauthorized       401 (no token, or an unknown or revoked one)
    ├── NotFound               404
    ├── MethodNotAllowed       405
    ├── AlreadyExists          409
    ├── TooManyRequests        429 (``.retry_after`` seconds)
    ├── NotReady               503
    │   └── Overloaded         503 (``.retry_after`` seconds)
    └── InternalError          500

Network failures raise ``httpx.TransportError`` (e.g. ``httpx.ConnectError``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx

from tastebud.api.models import (
    CampaignAnswer,
    CampaignList,
    CampaignOut,
    EmbeddingsAnswer,
    EventList,
    EventOut,
    ExportFormat,
    FilterCheck,
    FilterList,
    FilterOut,
    GroupList,
    GroupOut,
    GroupStatus,
    HealthOut,
    ImportMode,
    ItemsAnswer,
    JobList,
    JobOut,
    PutEventsOut,
    ReelOut,
    ScheduleList,
    ScheduleOut,
    SchemaOut,
    SolutionList,
    SolutionOut,
    TokenCreated,
    TokenList,
    TokenOut,
    TokenScope,
    TrainingStarted,
    UsersAnswer,
    VersionList,
    VersionOut,
)
from tastebud.errors import STATUS_TYPES, WIRE_ERRORS, InvalidInput, TastebudError
from tastebud.schema import DatasetKind

__all__ = ["Client", "ImportFailed", "JobFailed"]

_ERROR_TYPES = {cls.__name__: cls for cls in WIRE_ERRORS}  # the body's "type"
_FORMATS: dict[str, ExportFormat] = {".csv": "csv", ".parquet": "parquet"}


class JobFailed(InvalidInput):
    """A background job (import, training) ended with status ``failed``."""

    def __init__(self, message: str, job: JobOut) -> None:
        super().__init__(message)
        self.job = job


class ImportFailed(JobFailed):
    """An import job failed; nothing of it was stored."""


class Client:
    """A connection to a tastebud server, bound to one dataset group.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8765``.
        token: an API token (``admin`` scope, or ``ingest`` for the write calls only).
        group: the dataset group that the data methods act on.
        timeout: seconds to wait for connecting, sending or reading (not for a whole upload).
        transport: an httpx transport to use instead of the network (tests, proxies).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8765",
        *,
        token: str,
        group: str = "default",
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.group = group
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # service and dataset groups ---------------------------------------------------------------
    def health(self) -> HealthOut:
        return cast(HealthOut, self._json("GET", "/health"))

    def create_group(self, name: str) -> GroupOut:
        return cast(GroupOut, self._json("POST", "/v1/dataset-groups", json={"name": name}))

    def list_groups(self) -> list[GroupOut]:
        return cast(GroupList, self._json("GET", "/v1/dataset-groups"))["groups"]

    def get_group(self, name: str | None = None) -> GroupOut:
        return cast(GroupOut, self._json("GET", _group_path(name or self.group)))

    def delete_group(self, name: str) -> None:
        """Delete a dataset group and all its data."""
        self._request("DELETE", _group_path(name))

    def status(self) -> GroupStatus:
        """Row counts of this client's group (``counts``: interactions, items, users, …)."""
        return cast(GroupStatus, self._json("GET", self._path("/status")))

    # schemas ----------------------------------------------------------------------------------
    def put_schema(self, dataset: DatasetKind, fields: Mapping[str, str]) -> SchemaOut:
        """Declare a dataset's fields, e.g. ``{"GENRES": "categorical", "PRICE": "numerical"}``."""
        body = {"fields": dict(fields)}
        return cast(SchemaOut, self._json("PUT", self._path(f"/schemas/{dataset}"), json=body))

    def get_schema(self, dataset: DatasetKind) -> SchemaOut:
        return cast(SchemaOut, self._json("GET", self._path(f"/schemas/{dataset}")))

    # imports ----------------------------------------------------------------------------------
    def import_file(
        self,
        path: str | Path,
        *,
        dataset: DatasetKind,
        mode: ImportMode = "incremental",
        max_error_rate: float | None = None,
        encoding: str = "utf-8",
        wait: bool = True,
        poll_interval: float = 0.5,
    ) -> JobOut:
        """Upload a local CSV, CSV.gz or Parquet file and import it.

        Returns:
            The job: finished when ``wait`` (its ``result`` holds the counts), else just queued.

        Raises:
            ImportFailed: with ``wait``, the job failed (e.g. over the error budget).
        """
        path = Path(path)
        params: dict[str, str | float] = {
            "dataset": dataset, "mode": mode, "filename": path.name, "encoding": encoding,
        }  # fmt: skip
        if max_error_rate is not None:
            params["maxErrorRate"] = max_error_rate
        with open(path, "rb") as body:
            job = cast(
                JobOut,
                self._json(
                    "POST", self._path("/import-jobs/upload"), params=params, content=body,
                    headers={"Content-Type": "application/octet-stream"},
                ),
            )  # fmt: skip
        return self.wait_for_job(job["id"], poll_interval=poll_interval) if wait else job

    def import_server_file(
        self,
        path: str,
        *,
        dataset: DatasetKind,
        mode: ImportMode = "incremental",
        max_error_rate: float | None = None,
        encoding: str = "utf-8",
        wait: bool = True,
        poll_interval: float = 0.5,
    ) -> JobOut:
        """Import a file that is already on the server (``path`` as the server sees it)."""
        body = {"dataset": dataset, "path": path, "mode": mode, "encoding": encoding,
                "maxErrorRate": max_error_rate}  # fmt: skip
        job = cast(JobOut, self._json("POST", self._path("/import-jobs"), json=body))
        return self.wait_for_job(job["id"], poll_interval=poll_interval) if wait else job

    def start_batch_job(
        self,
        input_path: str,
        output_path: str | None,
        *,
        job_type: Literal["recommend", "segment"] = "recommend",
        solution: str | None = None,
        solution_version_id: str | None = None,
        num_results: int = 25,
        filter_name: str | None = None,
        max_error_rate: float = 0.1,
        explain: bool = False,
        to: Mapping[str, Any] | None = None,
        wait: bool = True,
        poll_interval: float = 0.5,
    ) -> JobOut:
        """Run a batch job over JSON Lines files on the server (paths as the server sees them);
        ``to`` (``{"url": "redis://…", "keyPrefix": "recs:", "ttlSeconds": 3600}``) also writes
        each answer to Redis.

        Returns:
            The job: finished when ``wait`` (its ``result`` holds lines, errors and the
            version that answered), else just queued.

        Raises:
            JobFailed: with ``wait``, the job failed (e.g. over its error budget).
        """
        body = {"jobType": job_type, "inputPath": input_path, "outputPath": output_path,
                "solution": solution, "solutionVersionId": solution_version_id,
                "numResults": num_results, "filterName": filter_name,
                "maxErrorRate": max_error_rate, "explain": explain,
                "to": None if to is None else dict(to)}  # fmt: skip
        job = cast(JobOut, self._json("POST", self._path("/batch-jobs"), json=body))
        return self.wait_for_job(job["id"], poll_interval=poll_interval) if wait else job

    def import_job(self, job_id: str) -> JobOut:
        return cast(JobOut, self._json("GET", f"/v1/import-jobs/{quote(job_id, safe='')}"))

    def import_jobs(self) -> list[JobOut]:
        return cast(JobList, self._json("GET", self._path("/import-jobs")))["jobs"]

    def job(self, job_id: str) -> JobOut:
        """Any background job (import, training) with its status and progress."""
        return cast(JobOut, self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}"))

    def wait_for_job(
        self, job_id: str, *, poll_interval: float = 0.5, timeout: float | None = None
    ) -> JobOut:
        """Poll a job until it ends.

        Raises:
            ImportFailed: an import job failed (nothing stored).
            JobFailed: another job failed.
            TimeoutError: it still runs after ``timeout`` seconds (None: wait for ever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == "succeeded":
                return job
            if job["status"] == "failed":
                failure = ImportFailed if job["kind"] == "import" else JobFailed
                raise failure(job["error"] or f"{job['kind']} job {job_id} failed", job)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(poll_interval)

    # real-time writes -------------------------------------------------------------------------
    def put_events(
        self,
        events: Sequence[Mapping[str, Any]],
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> PutEventsOut:
        """Record events (``itemId``, ``eventType``, ``eventId``, ``properties`` … as the API).

        Returns:
            ``{"accepted": n, "duplicates": m}``; an ``eventId`` already stored counts as a
            duplicate and is not stored again.
        """
        body: dict[str, Any] = {"eventList": [dict(e) for e in events]}
        if user_id is not None:
            body["userId"] = user_id
        if session_id is not None:
            body["sessionId"] = session_id
        return cast(PutEventsOut, self._json("POST", self._path("/events"), json=body))

    def put_items(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace items (``{"itemId": …, "properties": {…}}``); returns how many."""
        body = {"items": [dict(i) for i in items]}
        return int(self._json("POST", self._path("/items"), json=body)["accepted"])

    def put_users(self, users: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace users (``{"userId": …, "properties": {…}}``); returns how many."""
        body = {"users": [dict(u) for u in users]}
        return int(self._json("POST", self._path("/users"), json=body)["accepted"])

    def delete_users(self, user_ids: Sequence[str]) -> int:
        """Erase users and everything about them; returns how many existed."""
        body = {"userIds": list(user_ids)}
        return int(self._json("POST", self._path("/users/delete"), json=body)["deleted"])

    def recent_events(self, user_id: str, *, limit: int = 100) -> list[EventOut]:
        """The user's latest events, oldest first."""
        path = self._path(f"/users/{quote(user_id, safe='')}/events")
        return cast(EventList, self._json("GET", path, params={"limit": limit}))["events"]

    # export -----------------------------------------------------------------------------------
    def export(self, dataset: DatasetKind, path: str | Path) -> int:
        """Download a dataset to ``path`` (``.csv`` or ``.parquet``); returns rows written."""
        path = Path(path)
        format_ = _FORMATS.get(path.suffix.lower())
        if format_ is None:
            raise InvalidInput(f"{path}: export to .csv or .parquet")
        body = {"dataset": dataset, "format": format_}
        partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._stream("POST", self._path("/exports"), json=body) as response:
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            rows = int(response.headers.get("X-Tastebud-Rows", "-1"))
        partial.replace(path)
        return rows

    # solutions and training -------------------------------------------------------------------
    def create_solution(
        self,
        name: str,
        recipe: str,
        *,
        params: Mapping[str, Any] | None = None,
        event_weights: Mapping[str, float] | None = None,
        min_event_value: float | None = None,
        hpo_trials: int | None = None,
        replace: bool = False,
    ) -> SolutionOut:
        """Declare a solution; the server validates the recipe and its hyperparameters."""
        body = {
            "name": name, "recipe": recipe, "params": dict(params or {}),
            "eventWeights": dict(event_weights) if event_weights else None,
            "minEventValue": min_event_value, "hpoTrials": hpo_trials, "replace": replace,
        }  # fmt: skip
        return cast(SolutionOut, self._json("POST", self._path("/solutions"), json=body))

    def list_solutions(self) -> list[SolutionOut]:
        return cast(SolutionList, self._json("GET", self._path("/solutions")))["solutions"]

    def delete_solution(self, name: str) -> None:
        self._request("DELETE", self._path(f"/solutions/{quote(name, safe='')}"))

    def train(
        self, solution: str, *, wait: bool = True, seed: int = 0, poll_interval: float = 0.5,
        incremental: bool = False, full_fallback: bool = False,
    ) -> VersionOut:  # fmt: skip
        """Train a new version; with ``wait`` return it once active (JobFailed if it fails).
        ``incremental`` grows the active version (sequential); ``full_fallback`` fits from
        scratch when there is none to grow."""
        path = self._path(f"/solutions/{quote(solution, safe='')}/versions")
        params = {"seed": seed, "incremental": incremental, "fullFallback": full_fallback}
        started = cast(TrainingStarted, self._json("POST", path, params=params))
        if not wait:
            return started["solutionVersion"]
        self.wait_for_job(started["job"]["id"], poll_interval=poll_interval)
        return self.solution_version(started["solutionVersion"]["id"])

    def solution_versions(self, solution: str) -> list[VersionOut]:
        path = self._path(f"/solutions/{quote(solution, safe='')}/versions")
        return cast(VersionList, self._json("GET", path))["versions"]

    def solution_version(self, version_id: str) -> VersionOut:
        return cast(
            VersionOut, self._json("GET", f"/v1/solution-versions/{quote(version_id, safe='')}")
        )

    def item_embeddings(
        self, solution: str, item_ids: Sequence[str], *, version_id: str | None = None
    ) -> EmbeddingsAnswer:
        """Item vectors of the solution's newest active version (or ``version_id``), in its
        stable space: vectors with the same ``spaceId`` compare across versions."""
        return self._embeddings(solution, "items", item_ids, version_id)

    def user_embeddings(
        self, solution: str, user_ids: Sequence[str], *, version_id: str | None = None
    ) -> EmbeddingsAnswer:
        """User vectors from each user's latest events; dotted with an item vector of the
        same version, the model's score."""
        return self._embeddings(solution, "users", user_ids, version_id)

    def _embeddings(
        self, solution: str, kind: str, ids: Sequence[str], version_id: str | None
    ) -> EmbeddingsAnswer:
        path = self._path(f"/solutions/{quote(solution, safe='')}/embeddings/{kind}")
        params = {"ids": ",".join(ids)} | ({"solutionVersionId": version_id} if version_id else {})
        return cast(EmbeddingsAnswer, self._json("GET", path, params=params))

    # filters ----------------------------------------------------------------------------------
    def create_filter(self, name: str, expression: str, *, replace: bool = False) -> FilterOut:
        """Save a filter; the server validates it against the group's schemas (422 if not)."""
        body = {"name": name, "filterExpression": expression, "replace": replace}
        return cast(FilterOut, self._json("POST", self._path("/filters"), json=body))

    def validate_filter(self, expression: str) -> FilterCheck:
        """Check an expression without saving it; InvalidInput names the problem."""
        body = {"filterExpression": expression}
        return cast(FilterCheck, self._json("POST", self._path("/filters/validate"), json=body))

    def list_filters(self) -> list[FilterOut]:
        return cast(FilterList, self._json("GET", self._path("/filters")))["filters"]

    def get_filter(self, name: str) -> FilterOut:
        return cast(FilterOut, self._json("GET", self._path(f"/filters/{quote(name, safe='')}")))

    def delete_filter(self, name: str) -> None:
        self._request("DELETE", self._path(f"/filters/{quote(name, safe='')}"))

    # recommendations --------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str | None,
        *,
        solution: str | None = None,
        version_id: str | None = None,
        num_results: int = 25,
        exclude_seen: bool = True,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
        explain: bool = False,
        horizon: int = 1,
        include_intent: bool = False,
    ) -> ItemsAnswer:
        """Items for a user (``None``: a new visitor), best first; ``filter_name`` applies a
        filter of the group, with ``filter_values`` for its ``$PARAMETERS``. ``explain``: each
        item carries ``reasons`` (docs/explanations.md). ``horizon`` > 1: items for the user's
        next few actions (a sequential version trained with ``predictNext`` >= horizon).
        ``include_intent``: the answer's ``intent`` holds the predicted next event type and
        field values (intent heads)."""
        body = {"userId": user_id, "numResults": num_results, "excludeSeen": exclude_seen}
        body |= _filter(filter_name, filter_values) | _explain(explain)
        if horizon != 1:
            body["horizon"] = horizon
        if include_intent:
            body["includeIntent"] = True
        return cast(ItemsAnswer, self._ask("/recommendations", solution, version_id, body))

    def rank(
        self,
        user_id: str | None,
        item_ids: Sequence[str],
        *,
        solution: str | None = None,
        version_id: str | None = None,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
        explain: bool = False,
    ) -> ItemsAnswer:
        """``item_ids`` ordered for the user; items the model does not know come last, items
        the filter does not allow are dropped. ``explain``: each item carries ``reasons``."""
        body = {"userId": user_id, "inputList": list(item_ids)}
        body |= _filter(filter_name, filter_values) | _explain(explain)
        return cast(ItemsAnswer, self._ask("/personalized-ranking", solution, version_id, body))

    def similar_items(
        self,
        item_id: str,
        *,
        solution: str | None = None,
        version_id: str | None = None,
        num_results: int = 25,
        user_id: str | None = None,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
    ) -> ItemsAnswer:
        """Items like ``item_id`` (``user_id`` only serves filters that read a user)."""
        body = {"itemId": item_id, "numResults": num_results, "userId": user_id}
        body |= _filter(filter_name, filter_values)
        return cast(ItemsAnswer, self._ask("/similar-items", solution, version_id, body))

    def similar_users(
        self,
        user_id: str,
        *,
        solution: str | None = None,
        version_id: str | None = None,
        num_results: int = 25,
    ) -> UsersAnswer:
        body = {"userId": user_id, "numResults": num_results}
        return cast(UsersAnswer, self._ask("/similar-users", solution, version_id, body))

    def users_for_item(
        self,
        *,
        item_id: str | None = None,
        attribute: str | None = None,
        solution: str | None = None,
        version_id: str | None = None,
        num_results: int = 100,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
    ) -> UsersAnswer:
        """A segment: users most likely to want ``item_id`` or an ``attribute`` (FIELD=value),
        limited by a ``UserID`` filter."""
        body = {"itemId": item_id, "attribute": attribute, "numResults": num_results}
        body |= _filter(filter_name, filter_values)
        return cast(UsersAnswer, self._ask("/users-for-item", solution, version_id, body))

    def compose_reel(
        self,
        user_id: str,
        clips: Sequence[Mapping[str, Any]],
        *,
        seconds: float = 30.0,
        cadence: str | None = None,
        fps: str = "25",
        solution: str | None = None,
        version_id: str | None = None,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
    ) -> ReelOut:
        """A reel of the user's ranked titles from ``clips`` (``{"title", "clip", "source",
        "start", "end"}`` each): its edit list (``clips``) and OTIO ``timeline`` (docs/reels.md)."""
        body = {"userId": user_id, "clips": list(clips), "seconds": seconds, "cadence": cadence,
                "fps": fps} | _filter(filter_name, filter_values)  # fmt: skip
        return cast(ReelOut, self._ask("/reels", solution, version_id, body))

    def _ask(
        self, suffix: str, solution: str | None, version_id: str | None, body: dict[str, Any]
    ) -> Any:
        target = {"solution": solution, "solutionVersionId": version_id}
        return self._json("POST", self._path(suffix), json=target | body)

    # campaigns --------------------------------------------------------------------------------
    def create_campaign(
        self, name: str, solution: str, *, version_id: str = "latest",
        config: Mapping[str, Any] | None = None, replace: bool = False,
    ) -> CampaignOut:  # fmt: skip
        """Deploy ``version_id`` of ``solution`` (``"latest"``: its newest active version).
        ``config`` (camelCase): ``cacheTtlSeconds``, ``minInteractions``, ``rules``,
        ``precomputed`` (``{"url": "redis://…", "keyPrefix": "recs:", "overloadShare": 0.8}``:
        a batch job's answers, served when the model cannot answer)."""
        body = {"name": name, "solution": solution, "solutionVersionId": version_id,
                "config": dict(config or {}), "replace": replace}  # fmt: skip
        return cast(CampaignOut, self._json("POST", self._path("/campaigns"), json=body))

    def update_campaign(
        self, name: str, *, version_id: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> CampaignOut:  # fmt: skip
        """Deploy another version (the current one becomes the rollback target) or change
        settings (``{"precomputed": None}`` removes the precomputed source); requests never
        fail during the switch."""
        body = {"solutionVersionId": version_id, "config": dict(config) if config else None}
        return cast(CampaignOut, self._json("PATCH", self._campaign(name), json=body))

    def rollback_campaign(self, name: str) -> CampaignOut:
        return cast(CampaignOut, self._json("POST", self._campaign(name) + "/rollback"))

    def get_campaign(self, name: str) -> CampaignOut:
        return cast(CampaignOut, self._json("GET", self._campaign(name)))

    def list_campaigns(self) -> list[CampaignOut]:
        return cast(CampaignList, self._json("GET", self._path("/campaigns")))["campaigns"]

    def delete_campaign(self, name: str) -> None:
        self._request("DELETE", self._campaign(name))

    def campaign_recommend(
        self, campaign: str, user_id: str | None = None, *, item_id: str | None = None,
        num_results: int = 25, filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
        context: Mapping[str, str] | None = None, promotion: Mapping[str, Any] | None = None,
        explain: bool = False,
    ) -> CampaignAnswer:  # fmt: skip
        """A campaign's answer for ``user_id`` (or items like ``item_id``); ``promotion``:
        ``{"name", "percentPromotedItems", "filterName", "filterValues"}``. The answer says its
        ``source`` (model, rules or precomputed) and whether it came from the cache; with
        ``explain`` each item carries ``reasons`` (docs/explanations.md)."""
        body: dict[str, Any] = {"userId": user_id, "itemId": item_id, "numResults": num_results,
                                "context": dict(context) if context else None}  # fmt: skip
        body |= _filter(filter_name, filter_values) | _explain(explain)
        if promotion is not None:
            body["promotions"] = [dict(promotion)]
        path = self._campaign(campaign) + "/recommendations"
        return cast(CampaignAnswer, self._json("POST", path, json=body))

    def _campaign(self, name: str) -> str:
        return self._path(f"/campaigns/{quote(name, safe='')}")

    # schedules --------------------------------------------------------------------------------
    def create_schedule(
        self, name: str, solution: str, *, every: str | int | None = None,
        cron: str | None = None, after_events: int | None = None,
        max_train_seconds: float | None = None, max_metric_drop: float | None = None,
        metric: str | None = None, replace: bool = False, incremental: bool = False,
    ) -> ScheduleOut:  # fmt: skip
        """Retrain ``solution`` on one trigger: ``every="15m"``, ``cron="0 3 * * *"`` (UTC) or
        ``after_events=1000``; ``latest`` campaigns follow each successful run. A training
        slower than ``max_train_seconds`` is stopped; a version more than ``max_metric_drop``
        below the serving one on ``metric`` (default ndcg@10) is kept back (status gated).
        ``incremental`` grows the serving version instead of a full retrain (sequential)."""
        body = {"name": name, "solution": solution, "every": every, "cron": cron,
                "afterEvents": after_events, "maxTrainSeconds": max_train_seconds,
                "maxMetricDrop": max_metric_drop, "metric": metric, "replace": replace,
                "incremental": incremental}  # fmt: skip
        return cast(ScheduleOut, self._json("POST", self._path("/schedules"), json=body))

    def list_schedules(self) -> list[ScheduleOut]:
        return cast(ScheduleList, self._json("GET", self._path("/schedules")))["schedules"]

    def get_schedule(self, name: str) -> ScheduleOut:
        """One schedule: its trigger, next run (or pending events) and last run's outcome."""
        return cast(ScheduleOut, self._json("GET", self._schedule(name)))

    def delete_schedule(self, name: str) -> None:
        self._request("DELETE", self._schedule(name))

    def pause_schedule(self, name: str) -> ScheduleOut:
        return cast(ScheduleOut, self._json("POST", self._schedule(name) + "/pause"))

    def resume_schedule(self, name: str) -> ScheduleOut:
        return cast(ScheduleOut, self._json("POST", self._schedule(name) + "/resume"))

    def _schedule(self, name: str) -> str:
        return self._path(f"/schedules/{quote(name, safe='')}")

    # messages (docs/messaging.md) -----------------------------------------------------------
    def create_message(
        self, name: str, *, channel: str, templates: Mapping[str, str],
        item_id: str | None = None, solution: str | None = None, top_users: int = 100,
        segment: Sequence[Mapping[str, Any]] | None = None, provider: str = "template",
        html: bool = False, **options: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """A message for the top ``top_users`` of ``item_id`` by the item-affinity ``solution``,
        or for a ``segment`` (the lines of a segment file); ``templates`` by treatment
        (``{"default": "Subject: …\\n…"}``). ``options``: ``recommendations``, ``activity``,
        ``address_field``, ``banned_words``."""
        body = {"name": name, "channel": channel, "templates": dict(templates),
                "itemId": item_id, "solution": solution, "topUsers": top_users,
                "segment": None if segment is None else [dict(row) for row in segment],
                "provider": provider, "html": html,
                **{_camel(k): v for k, v in options.items()}}  # fmt: skip
        return cast(dict[str, Any], self._json("POST", self._path("/messages"), json=body))

    def list_messages(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json("GET", self._path("/messages")))

    def get_message(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", self._message(name)))

    def preview_message(self, name: str, *, user_id: str | None = None) -> dict[str, Any]:
        params = {} if user_id is None else {"user": user_id}
        return cast(dict[str, Any], self._json("GET", self._message(name) + "/preview",
                                               params=params))  # fmt: skip

    def send_message(self, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Send to every user not sent to yet; a re-run never sends twice."""
        body = {"dryRun": dry_run}
        return cast(dict[str, Any], self._json("POST", self._message(name) + "/send", json=body))

    def message_report(self, name: str) -> dict[str, Any]:
        """Sends, deliveries, opens, clicks and rates per activity and treatment; ``name`` may
        also be a campaign or journey id named by app events."""
        return cast(dict[str, Any], self._json("GET", self._message(name) + "/report"))

    def _message(self, name: str) -> str:
        return self._path(f"/messages/{quote(name, safe='')}")

    # experiments and metric attributions (docs/experiments.md) ------------------------------
    def create_experiment(
        self, name: str, arms: Mapping[str, tuple[str, float]], *, metric: str | None = None,
        attribution_window: str | int = "24h",
    ) -> dict[str, Any]:  # fmt: skip
        """A draft A/B test: ``arms`` maps arm name -> (campaign, percent of users), e.g.
        ``{"control": ("home-rules", 50), "treatment": ("home-ranker", 50)}``."""
        body = {"name": name, "metric": metric, "attributionWindow": attribution_window,
                "arms": [{"name": arm, "campaign": campaign, "weight": weight}
                         for arm, (campaign, weight) in arms.items()]}  # fmt: skip
        return cast(dict[str, Any], self._json("POST", self._path("/experiments"), json=body))

    def start_experiment(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("POST", self._experiment(name) + "/start"))

    def stop_experiment(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("POST", self._experiment(name) + "/stop"))

    def get_experiment(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", self._experiment(name)))

    def list_experiments(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json("GET", self._path("/experiments")))

    def delete_experiment(self, name: str) -> None:
        self._request("DELETE", self._experiment(name))

    def experiment_report(self, name: str, *, cuped: bool = True) -> dict[str, Any]:
        """Per arm: users, exposures, conversions, rates, values, lifts with 95% intervals and
        p-values; the sample-ratio check; CUPED-adjusted lifts."""
        params = {"cuped": str(cuped).lower()}
        return cast(dict[str, Any], self._json("GET", self._experiment(name) + "/report",
                                               params=params))  # fmt: skip

    def experiment_recommend(
        self, experiment: str, user_id: str, *, num_results: int = 25,
        filter_name: str | None = None, filter_values: Mapping[str, Sequence[str]] | None = None,
        context: Mapping[str, str] | None = None, promotion: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The answer of the campaign of ``user_id``'s arm, with ``experiment``, ``arm`` and
        ``recommendationId`` (send it back with the user's events: outcomes are attributed
        by it)."""
        body: dict[str, Any] = {"userId": user_id, "numResults": num_results,
                                "context": dict(context) if context else None}  # fmt: skip
        body |= _filter(filter_name, filter_values)
        if promotion is not None:
            body["promotions"] = [dict(promotion)]
        path = self._experiment(experiment) + "/recommendations"
        return cast(dict[str, Any], self._json("POST", path, json=body))

    def experiment_rank(
        self, experiment: str, user_id: str, item_ids: Sequence[str], *,
        context: Mapping[str, str] | None = None, filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``item_ids`` ordered by the campaign of ``user_id``'s arm, with ``experiment``,
        ``arm`` and ``recommendationId`` (send it back with the user's events)."""
        body: dict[str, Any] = {"userId": user_id, "inputList": list(item_ids),
                                "context": dict(context) if context else None}  # fmt: skip
        body |= _filter(filter_name, filter_values)
        path = self._experiment(experiment) + "/personalized-ranking"
        return cast(dict[str, Any], self._json("POST", path, json=body))

    def _experiment(self, name: str) -> str:
        return self._path(f"/experiments/{quote(name, safe='')}")

    def create_metric_attribution(
        self, name: str, *, event_type: str, expression: str
    ) -> dict[str, Any]:
        """A metric over events of ``event_type``: ``"SAMPLECOUNT()"`` or
        ``"SUM(Items.PRICE)"``; campaign answers are logged from now on."""
        body = {"name": name, "eventType": event_type, "expression": expression}
        path = self._path("/metric-attributions")
        return cast(dict[str, Any], self._json("POST", path, json=body))

    def list_metric_attributions(self) -> list[dict[str, Any]]:
        path = self._path("/metric-attributions")
        return cast(list[dict[str, Any]], self._json("GET", path))

    def delete_metric_attribution(self, name: str) -> None:
        self._request("DELETE", self._metric(name))

    def metric_attribution_report(self, name: str) -> dict[str, Any]:
        """The metric per campaign, serving source, experiment arm and promotion."""
        return cast(dict[str, Any], self._json("GET", self._metric(name) + "/report"))

    def _metric(self, name: str) -> str:
        return self._path(f"/metric-attributions/{quote(name, safe='')}")

    # features (docs/features.md) -----------------------------------------------------------
    def apply_features(self, declaration: str | Mapping[str, Any]) -> dict[str, Any]:
        """Declare the group's features (YAML text, or the same as a mapping): a new version."""
        text = declaration if isinstance(declaration, str) else json.dumps(dict(declaration))
        return cast(dict[str, Any], self._json("PUT", self._path("/features"),
                                               content=text.encode()))  # fmt: skip

    def get_features(self) -> dict[str, Any]:
        """The current declaration, its version and the batch features' computations."""
        return cast(dict[str, Any], self._json("GET", self._path("/features")))

    def compute_features(self) -> dict[str, Any]:
        """Recompute the batch features now."""
        return cast(dict[str, Any], self._json("POST", self._path("/features/compute")))

    def online_features(
        self, item_ids: Sequence[str], *, user_id: str | None = None,
        names: Sequence[str] | None = None, context: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``{"names": [...], "itemIds": [...], "values": [[...] per item]}`` (null: none)."""
        body = {"itemIds": list(item_ids), "userId": user_id,
                "names": None if names is None else list(names),
                "context": None if context is None else dict(context)}  # fmt: skip
        return cast(dict[str, Any], self._json("POST", self._path("/features/online"),
                                               json=body))  # fmt: skip

    # tokens -----------------------------------------------------------------------------------
    def create_token(self, name: str, *, scope: TokenScope = "ingest") -> TokenCreated:
        """A new token; its secret (``["token"]``) is shown only in this answer."""
        body = {"name": name, "scope": scope}
        return cast(TokenCreated, self._json("POST", "/v1/tokens", json=body))

    def list_tokens(self) -> list[TokenOut]:
        return cast(TokenList, self._json("GET", "/v1/tokens"))["tokens"]

    def revoke_token(self, name: str) -> None:
        self._request("DELETE", f"/v1/tokens/{quote(name, safe='')}")

    # plumbing ---------------------------------------------------------------------------------
    def _path(self, suffix: str) -> str:
        return _group_path(self.group) + suffix

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if not response.is_success:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    @contextmanager
    def _stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        with self._http.stream(method, path, **kwargs) as response:
            if not response.is_success:
                response.read()
                raise _error(response)
            yield response


def _filter(name: str | None, values: Mapping[str, Sequence[str]] | None) -> dict[str, Any]:
    if name is None and not values:
        return {}
    return {"filterName": name, "filterValues": {k: list(v) for k, v in (values or {}).items()}}


def _explain(explain: bool) -> dict[str, Any]:
    return {"explain": True} if explain else {}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _group_path(group: str) -> str:
    return f"/v1/dataset-groups/{quote(group, safe='')}"


def _error(response: httpx.Response) -> TastebudError:
    """The tastebud exception for an error response, with the server's message."""
    error_type: type[TastebudError] | None
    try:
        error = response.json()["error"]
        message, error_type = str(error["message"]), _ERROR_TYPES.get(error["type"])
    except (ValueError, KeyError, TypeError):
        message, error_type = response.text.strip() or response.reason_phrase, None
    error_type = error_type or STATUS_TYPES.get(response.status_code)  # a proxy's answer
    failure = (TastebudError(f"HTTP {response.status_code}: {message}") if error_type is None
               else error_type(message))  # fmt: skip
    failure.retry_after = _retry_after(response.headers.get("Retry-After"))
    return failure


def _retry_after(header: str | None) -> float | None:
    """The ``Retry-After`` header's seconds (tastebud sends seconds, never an HTTP date)."""
    try:
        return None if header is None else max(0.0, float(header))
    except ValueError:
        return None
