"""The scheduler: find due schedules, claim each run for one worker, train, record the outcome.

It runs as a thread inside ``tastebud serve`` (every API worker) and in ``tastebud worker``
processes; any number of them may share a store. The store's claim gives each due run to one of
them (see :mod:`tastebud.store.schedules`), and the winner holds a lease that a heartbeat thread
renews while it trains. A worker that dies stops renewing; once its lease expires another
worker takes the run over and marks the dead worker's job failed.

A run trains a new version through a small callable (:meth:`VersionTrainer.train_new`) and
shows in ``tastebud jobs list`` as a ``scheduled-training`` job. On success the version is
active, so campaigns following ``latest`` switch to it; a failure, a training slower than
``max_train_seconds`` (checked at each progress report: cooperative) or a version held back by
the quality gate leaves the serving version as it was. Every outcome is counted in
``tastebud_schedule_runs_total{group,schedule,outcome}`` and logged.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from tastebud import observability
from tastebud.errors import NotFound, StoreUnavailable, TastebudError
from tastebud.jobs.runner import JobRunner, ProgressFn
from tastebud.jobs.schedules import ScheduleSpec
from tastebud.jobs.training import Gate
from tastebud.store import ScheduleRecord, SolutionVersionRecord, Store

_log = logging.getLogger(__name__)

JOB_KIND = "scheduled-training"
Outcome = Literal["succeeded", "gated", "failed", "timed_out", "cancelled", "lost"]


class TrainingTimeout(TastebudError):
    """Training went on past the schedule's ``max_train_seconds``."""


class RunInterrupted(TastebudError):
    """The worker is stopping, or no longer holds the run's lease: training stops."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class TrainFn(Protocol):
    """Trains a new version of a solution now (``VersionTrainer.train_new``)."""

    def __call__(
        self, group: str, solution: str, *, progress: ProgressFn | None = None,
        job_id: str | None = None, gate: Gate | None = None, incremental: bool = False,
        full_fallback: bool = False,
    ) -> SolutionVersionRecord: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one run of a schedule did."""

    group: str
    schedule: str
    outcome: Outcome
    job_id: str | None = None
    version_id: str | None = None
    seconds: float = 0.0
    message: str | None = None


def quality_gate(store: Store, group: str, solution: str, *, metric: str, max_drop: float) -> Gate:
    """A gate that holds back a version whose ``metric`` is more than ``max_drop`` below the
    serving (newest active) version's. Nothing to compare with (no active version, or one
    without the metric) lets it through."""

    def gate(metrics: Mapping[str, Any]) -> str | None:
        serving = next((v for v in store.list_solution_versions(group, solution)
                        if v.status == "active"), None)  # fmt: skip
        old = None if serving is None else (serving.body.get("metrics") or {}).get(metric)
        if serving is None or old is None:
            return None
        new = metrics.get(metric)
        if new is None:
            return f"{metric}: the new version has none to compare with {serving.id}'s {old:.4f}"
        if new < old - max_drop:
            return (
                f"{metric} {new:.4f} is {old - new:.4f} below the serving version {serving.id} "
                f"({old:.4f}); max_metric_drop {max_drop:g}"
            )
        return None

    return gate


class Scheduler:
    """Runs due schedules of one store, alone or beside other schedulers (other processes).

    Args:
        store: the shared store.
        train: trains a new version (see :class:`TrainFn`).
        jobs: the runner that records each run as a job (the engine's, for live progress).
        lease_seconds: how long a claim lasts unless renewed (renewed every third of it).
        poll_seconds: how often :meth:`start`'s thread looks for due schedules.
        groups: only these dataset groups' schedules (default: all).
        on_version: called with each version a run made active (e.g. to drop cached
            campaign records, so this process switches at once).
    """

    def __init__(
        self, store: Store, train: TrainFn, jobs: JobRunner, *, lease_seconds: float = 60.0,
        poll_seconds: float = 5.0, groups: Sequence[str] | None = None,
        on_version: Callable[[SolutionVersionRecord], None] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.train = train
        self.jobs = jobs
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.groups = None if groups is None else tuple(groups)
        self.on_version = on_version
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # the loop ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Run due schedules every ``poll_seconds`` on a background thread, until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="tastebud-scheduler", daemon=True)
        self._thread.start()
        _log.info("scheduler started owner=%s poll_seconds=%g", self.owner, self.poll_seconds)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the loop; a training in progress stops at its next progress report, and its run
        is released (not counted), so another worker does it again."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            _log.info("scheduler stopped owner=%s", self.owner)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_due()
            except StoreUnavailable as error:  # an outage: no traceback every pass
                _log.warning("scheduler pass skipped owner=%s error=%s", self.owner, error)
            except Exception:  # the store may be briefly unreachable: try again next time
                _log.exception("scheduler pass failed owner=%s", self.owner)
            self._stopping.wait(self.poll_seconds)

    def run_due(self, now: float | None = None) -> list[RunReport]:
        """Claim and run every schedule due at ``now`` (default: the time), one after another.

        Deterministic for tests and ``tastebud worker --once``: nothing waits for a clock.
        """
        now = time.time() if now is None else now
        reports = []
        for record in self.store.due_schedules(now, groups=self.groups):
            if self._stopping.is_set():
                break
            try:
                if not self._enough_events(record):
                    continue
                claimed = self.store.claim_schedule(
                    record.group, record.name, runs=record.runs, owner=self.owner, now=now,
                    lease_until=now + self.lease_seconds,
                )  # fmt: skip
                if claimed is not None:
                    reports.append(self._run(claimed, now))
            except NotFound as error:  # deleted meanwhile (the schedule, its group)
                _log.info("schedule gone group=%s schedule=%s: %s", record.group, record.name,
                          error.message)  # fmt: skip
        return reports

    def _enough_events(self, record: ScheduleRecord) -> bool:
        needed = ScheduleSpec.from_dict(record.spec).after_events
        if needed is None:
            return True
        arrived = self.store.interactions_after_count(record.group, record.seq_watermark,
                                                      cap=needed)  # fmt: skip
        return arrived >= needed

    # one run ----------------------------------------------------------------------------------
    def _run(self, record: ScheduleRecord, now: float) -> RunReport:
        """Run a claimed schedule (``record`` as it was before the claim)."""
        if record.lease_owner is not None:
            self._take_over(record, now)
        spec = ScheduleSpec.from_dict(record.spec)
        seq = self.store.last_seq(record.group)  # the watermark when no version says better
        started = time.monotonic()
        lease = _Lease(self, record, clock=lambda: now + time.monotonic() - started)
        run = _Run(self, record, spec, lease, started)
        with lease:
            job = self.jobs.run(group=record.group, kind=JOB_KIND, fn=run.work, params={
                "schedule": record.name, "solution": record.solution,
                "trigger": spec.describe(), "worker": self.owner,
            })  # fmt: skip
        version = run.version
        outcome: Outcome = run.outcome or ("succeeded" if job.status == "succeeded" else "failed")
        if version is not None and version.status == "gated":
            outcome = "gated"
        seconds = time.monotonic() - started
        message = job.error or (None if version is None else version.body.get("gated"))
        report = RunReport(
            record.group, record.name, outcome, job.id, None if version is None else version.id,
            round(seconds, 3), message,
        )  # fmt: skip
        self._record(record, spec, report, now=now, seq=seq, version=version)
        if outcome == "succeeded" and version is not None and self.on_version is not None:
            self.on_version(version)
        return report

    def _record(
        self, record: ScheduleRecord, spec: ScheduleSpec, report: RunReport, *, now: float,
        seq: int, version: SolutionVersionRecord | None,
    ) -> None:  # fmt: skip
        last_run = {"at": now, "outcome": report.outcome, "job": report.job_id,
                    "version": report.version_id, "seconds": report.seconds,
                    "message": report.message}  # fmt: skip
        kept = True
        if report.outcome in ("cancelled", "lost"):  # not a run: done again (or by the new owner)
            self.store.release_schedule(record.group, record.name, owner=self.owner,
                                        last_run=last_run)  # fmt: skip
        else:
            snapshot = {} if version is None else version.body.get("snapshot") or {}
            kept = self.store.finish_schedule_run(
                record.group, record.name, owner=self.owner,
                next_run_at=spec.next_run(due_at=record.next_run_at or now,
                                          now=now + report.seconds),
                seq_watermark=int(snapshot.get("last_seq") or seq), last_run=last_run,
            )  # fmt: skip
        observability.schedule_run(record.group, record.name, report.outcome)
        level = logging.INFO if report.outcome == "succeeded" else logging.WARNING
        _log.log(
            level, "schedule run done group=%s schedule=%s outcome=%s job=%s version=%s "
            "seconds=%.2f recorded=%s message=%r", record.group, record.name, report.outcome,
            report.job_id, report.version_id, report.seconds, kept, report.message,
        )  # fmt: skip

    def _take_over(self, record: ScheduleRecord, now: float) -> None:
        """The previous owner's lease expired mid-run: its job will never finish, say so."""
        _log.warning("schedule lease expired group=%s schedule=%s owner=%s job=%s: taking over",
                     record.group, record.name, record.lease_owner, record.job_id)  # fmt: skip
        if record.job_id is None:
            return
        try:
            job = self.store.get_job(record.job_id)
        except NotFound:
            return
        if job.status in ("queued", "running"):
            error = (f"worker {record.lease_owner} stopped renewing its lease; the run was "
                     f"taken over by {self.owner}")  # fmt: skip
            self.store.save_job(replace(job, status="failed", error=error, updated_at=now))


class _Run:
    """The job function of one run, and what it learnt (outcome, version)."""

    def __init__(
        self, scheduler: Scheduler, record: ScheduleRecord, spec: ScheduleSpec, lease: _Lease,
        started: float,
    ) -> None:  # fmt: skip
        self.scheduler = scheduler
        self.record = record
        self.spec = spec
        self.lease = lease
        limit = spec.max_train_seconds
        self.deadline = math.inf if limit is None else started + limit
        self.outcome: Outcome | None = None
        self.version: SolutionVersionRecord | None = None

    def work(self, job_id: str, progress: ProgressFn) -> Mapping[str, Any]:
        self.lease.renew(job_id)
        spec, record = self.spec, self.record
        gate = None
        if spec.max_metric_drop is not None:
            gate = quality_gate(self.scheduler.store, record.group, record.solution,
                                metric=spec.metric, max_drop=spec.max_metric_drop)  # fmt: skip
        # an incremental schedule's first run (nothing to grow yet) is a full fit
        grow = {"incremental": True, "full_fallback": True} if spec.incremental else {}
        try:
            self.version = self.scheduler.train(
                record.group, record.solution, progress=self._guard(progress), job_id=job_id,
                gate=gate, **grow,
            )  # fmt: skip
        except TrainingTimeout:
            self.outcome = "timed_out"
            raise
        except RunInterrupted as interrupted:
            self.outcome = interrupted.outcome
            raise
        body = self.version.body
        return {"outcome": "gated" if self.version.status == "gated" else "succeeded",
                "solution_version": self.version.id, "status": self.version.status,
                "metrics": body.get("metrics"), "gated": body.get("gated"),
                "train_seconds": body.get("train_seconds")}  # fmt: skip

    def _guard(self, progress: ProgressFn) -> ProgressFn:
        """Progress that also stops the training: past the deadline, on shutdown, without a
        lease (recipes report often; each report is a point where training may stop)."""
        limit = self.spec.max_train_seconds

        def guarded(fraction: float, message: str) -> None:
            progress(fraction, message)
            if self.scheduler.stopping:
                raise RunInterrupted("cancelled: the worker is shutting down", "cancelled")
            if self.lease.lost:
                raise RunInterrupted(
                    "the run's lease was lost (schedule deleted, or taken over)", "lost"
                )
            if time.monotonic() > self.deadline:
                raise TrainingTimeout(
                    f"max_train_seconds: training took longer than {limit:g} s (stopped at "
                    f"{message!r}); the serving version is kept"
                )

        return guarded


class _Lease:
    """Renews a run's lease every third of its length while the run goes on (a thread, so that
    a long step without progress reports keeps it too)."""

    def __init__(self, scheduler: Scheduler, record: ScheduleRecord, *, clock: Callable[[], float]):
        self.scheduler = scheduler
        self.record = record
        self.clock = clock
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="tastebud-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def renew(self, job_id: str | None = None) -> None:
        scheduler, record = self.scheduler, self.record
        try:
            held = scheduler.store.renew_schedule_lease(
                record.group, record.name, owner=scheduler.owner,
                lease_until=self.clock() + scheduler.lease_seconds, job_id=job_id,
            )  # fmt: skip
        except NotFound:
            held = False
        except Exception:  # a store hiccup: the lease has time left, try again next beat
            _log.exception("lease renewal failed group=%s schedule=%s", record.group, record.name)
            return
        if not held and not self.lost:
            self.lost = True
            _log.warning("schedule lease lost group=%s schedule=%s owner=%s", record.group,
                         record.name, scheduler.owner)  # fmt: skip

    def _beat(self) -> None:
        while not self._done.wait(self.scheduler.lease_seconds / 3):
            self.renew()
