"""Retraining schedules: what triggers a run, when the next one is due, and their records.

A schedule retrains one solution on a trigger: ``every`` (a fixed interval such as ``15m``),
``cron`` (five fields, in UTC) or ``after_events`` (once N interactions arrived since the data
the last run, or the serving version, saw). Options: ``max_train_seconds`` (a slower training
is abandoned and the old version keeps serving) and ``max_metric_drop`` (a quality gate on an
offline metric). :class:`Schedules` creates, lists, pauses and deletes them; the runs are
:mod:`tastebud.jobs.scheduler`'s.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from croniter import croniter

from tastebud.errors import InvalidInput
from tastebud.jobs.training import SolutionSpec
from tastebud.store import ScheduleRecord, Store

Trigger = Literal["every", "cron", "after-events"]
# The leave-last-out metrics stored with each version (jobs/training.py); higher is better.
METRICS = ("ndcg@10", "hr@10", "ndcg@20", "hr@20", "mrr@25", "coverage@10")
DEFAULT_METRIC = "ndcg@10"
MIN_INTERVAL_SECONDS = 10
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_INTERVAL = re.compile(r"(?:\d+[smhd])+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def parse_interval(text: str | int) -> int:
    """``"15m"``, ``"1h30m"``, ``"2d"`` (or a number of seconds) -> seconds.

    Raises:
        InvalidInput: not a duration, or shorter than :data:`MIN_INTERVAL_SECONDS`.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        compact = str(text).strip().lower().replace(" ", "")
        if not _INTERVAL.fullmatch(compact):
            raise InvalidInput(
                f"every: expected a duration such as 30s, 15m, 1h, 1h30m or 1d, got {text!r}"
            )
        parts = re.findall(r"(\d+)([smhd])", compact)
        seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds < MIN_INTERVAL_SECONDS:
        raise InvalidInput(f"every: at least {MIN_INTERVAL_SECONDS}s, got {text!r}")
    return seconds


def format_interval(seconds: int) -> str:
    """The shortest spelling :func:`parse_interval` reads back: 5400 -> ``"1h30m"``."""
    out = ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        out += f"{count}{unit}" if count else ""
    return out or "0s"


def parse_cron(expression: str) -> str:
    """A standard five-field cron expression (minute hour day month weekday), normalized.

    Raises:
        InvalidInput: another number of fields, or a field croniter refuses.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInput(
            f"cron: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {expression!r}"
        )
    normalized = " ".join(fields)
    if not croniter.is_valid(normalized):
        raise InvalidInput(f"cron: {expression!r} is not a valid cron expression")
    return normalized


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule's trigger (exactly one of the first three) and options."""

    every_seconds: int | None = None
    cron: str | None = None
    after_events: int | None = None
    max_train_seconds: float | None = None
    max_metric_drop: float | None = None
    metric: str = DEFAULT_METRIC
    incremental: bool = False  # grow the serving version (``train --incremental``)

    @classmethod
    def parse(
        cls, *, every: str | int | None = None, cron: str | None = None,
        after_events: int | None = None, max_train_seconds: float | None = None,
        max_metric_drop: float | None = None, metric: str | None = None,
        incremental: bool = False,
    ) -> ScheduleSpec:  # fmt: skip
        """Validate user input; every error names the field and the value.

        Raises:
            InvalidInput: no or several triggers, or a bad value.
        """
        given = [name for name, value in (("every", every), ("cron", cron),
                 ("after_events", after_events)) if value is not None]  # fmt: skip
        if len(given) != 1:
            raise InvalidInput(
                "schedule: give exactly one trigger: every (e.g. 15m), cron (e.g. '0 3 * * *') "
                f"or after_events (e.g. 1000), got {', '.join(given) or 'none'}"
            )
        if after_events is not None and (isinstance(after_events, bool) or after_events < 1):
            raise InvalidInput(f"after_events: expected a positive integer, got {after_events!r}")
        if max_train_seconds is not None and not max_train_seconds > 0:
            raise InvalidInput(
                f"max_train_seconds: expected a positive number, got {max_train_seconds!r}"
            )
        if max_metric_drop is not None and not max_metric_drop >= 0:
            raise InvalidInput(f"max_metric_drop: expected a number >= 0, got {max_metric_drop!r}")
        if metric is not None and max_metric_drop is None:
            raise InvalidInput(f"metric: {metric!r} is only used with max_metric_drop; set both")
        if incremental and max_metric_drop is not None:
            raise InvalidInput("max_metric_drop: incremental versions have no offline metrics "
                               "to compare; use one or the other")  # fmt: skip
        if metric is not None and metric not in METRICS:
            raise InvalidInput(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        return cls(
            every_seconds=None if every is None else parse_interval(every),
            cron=None if cron is None else parse_cron(cron),
            after_events=after_events, max_train_seconds=max_train_seconds,
            max_metric_drop=max_metric_drop, metric=metric or DEFAULT_METRIC,
            incremental=incremental,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> ScheduleSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in body.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def trigger(self) -> Trigger:
        if self.every_seconds is not None:
            return "every"
        return "cron" if self.cron is not None else "after-events"

    def describe(self) -> str:
        """``every 15m``, ``cron 0 3 * * *`` or ``after 1000 events``."""
        if self.every_seconds is not None:
            return f"every {format_interval(self.every_seconds)}"
        if self.cron is not None:
            return f"cron {self.cron}"
        return f"after {self.after_events} events"

    def first_run(self, now: float) -> float | None:
        """When a new (or resumed) schedule first runs; None for an event trigger."""
        if self.every_seconds is not None:
            return now + self.every_seconds
        if self.cron is not None:
            return _next_cron(self.cron, now)
        return None

    def next_run(self, *, due_at: float, now: float) -> float | None:
        """The run after one that was due at ``due_at`` and ended at ``now``: intervals stay
        on their grid (no drift from training time) and slots missed meanwhile are skipped."""
        if self.every_seconds is not None:
            missed = max(0.0, now - due_at) // self.every_seconds
            return due_at + (missed + 1) * self.every_seconds
        if self.cron is not None:
            return _next_cron(self.cron, max(now, due_at))
        return None


def _next_cron(expression: str, after: float) -> float:
    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(expression, start).get_next(float))


class Schedules:
    """Create, read, pause, resume and delete schedules (the runs are the Scheduler's)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self, group: str, name: str, *, solution: str, spec: ScheduleSpec, replace: bool = False,
        now: float | None = None,
    ) -> ScheduleRecord:  # fmt: skip
        """Save a schedule of ``solution``; an event trigger counts from the data the serving
        version saw (from the start when there is none).

        Raises:
            InvalidInput: a bad name, or a quality gate on a solution without offline metrics.
            NotFound: no such solution. AlreadyExists: the name is taken (without ``replace``).
        """
        if not _NAME.fullmatch(name):
            raise InvalidInput(f"schedule name {name!r}: use 1-63 letters, digits, '-' or '_'")
        body = SolutionSpec.parse(dict(self.store.get_solution(group, solution).body))
        if spec.max_metric_drop is not None and not body.evaluate:
            raise InvalidInput(
                f"max_metric_drop: solution {solution!r} has evaluate=false, so its versions "
                "have no offline metric to compare"
            )
        now = time.time() if now is None else now
        record = ScheduleRecord(
            group=group, name=name, solution=solution, spec=spec.to_dict(),
            next_run_at=spec.first_run(now), seq_watermark=self._serving_seq(group, solution),
            created_at=now,
        )  # fmt: skip
        self.store.put_schedule(record, replace=replace)
        return self.store.get_schedule(group, name)

    def get(self, group: str, name: str) -> ScheduleRecord:
        return self.store.get_schedule(group, name)

    def in_group(self, group: str) -> list[ScheduleRecord]:
        return self.store.list_schedules(group)

    def delete(self, group: str, name: str) -> None:
        """Delete a schedule; a run in progress is abandoned (its lease can't be renewed)."""
        self.store.delete_schedule(group, name)

    def pause(self, group: str, name: str) -> ScheduleRecord:
        """No new runs until resumed (a run in progress finishes)."""
        self.store.get_schedule(group, name)
        return self.store.set_schedule_paused(group, name, paused=True, next_run_at=None)

    def resume(self, group: str, name: str, *, now: float | None = None) -> ScheduleRecord:
        """Runs again; time triggers restart from now (runs missed while paused are skipped)."""
        spec = ScheduleSpec.from_dict(self.store.get_schedule(group, name).spec)
        next_run = spec.first_run(time.time() if now is None else now)
        return self.store.set_schedule_paused(group, name, paused=False, next_run_at=next_run)

    def describe(self, record: ScheduleRecord, *, now: float | None = None) -> dict[str, Any]:
        """The record as the API, CLI and SDK show it (snake_case keys)."""
        spec = ScheduleSpec.from_dict(record.spec)
        now = time.time() if now is None else now
        running = record.lease_owner is not None and (record.lease_until or 0.0) > now
        last_run = None if record.last_run is None else dict(record.last_run)
        return {
            "group": record.group, "name": record.name, "solution": record.solution,
            "trigger": spec.trigger, "description": spec.describe(), **spec.to_dict(),
            "paused": record.paused, "next_run_at": record.next_run_at,
            "pending_events": self.pending_events(record), "running": running,
            "runs": record.runs, "last_run": last_run, "created_at": record.created_at,
            "updated_at": record.updated_at,
        }  # fmt: skip

    def pending_events(self, record: ScheduleRecord) -> int | None:
        """Interactions that arrived since the last run (up to the trigger's count), for an
        event trigger; None for time triggers."""
        spec = ScheduleSpec.from_dict(record.spec)
        if spec.after_events is None:
            return None
        return self.store.interactions_after_count(
            record.group, record.seq_watermark, cap=spec.after_events
        )

    def _serving_seq(self, group: str, solution: str) -> int:
        for version in self.store.list_solution_versions(group, solution):
            if version.status == "active":
                return int((version.body.get("snapshot") or {}).get("last_seq") or 0)
        return 0
