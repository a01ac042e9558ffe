"""The experiment service: A/B tests between campaigns created, started, stopped, asked for
answers (each answer an exposure) and reported (issue 15)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from tastebud.errors import InvalidInput
from tastebud.experiments.assignment import arm_index
from tastebud.experiments.log import BufferedLog
from tastebud.experiments.metrics import MetricAttributions
from tastebud.experiments.report import build_report
from tastebud.experiments.spec import (
    DEFAULT_WINDOW_SECONDS,
    Arm,
    ExperimentSpec,
    check_name,
    parse_arms,
    parse_window,
)
from tastebud.serving.campaigns import CampaignRequest, CampaignServer
from tastebud.settings import ExperimentSettings
from tastebud.store import AnswerRecord, ExperimentRecord, ExposureRecord, Store

T = TypeVar("T")
RECORD_SECONDS = 1.0  # how long a process trusts its copy of an experiment (a stop elsewhere)


class ExperimentService:
    """Experiments of every group of one store. Thread-safe; :meth:`close` writes the
    exposures still buffered.

    Args:
        default_group: the group :meth:`arm_for` reads when none is given.
    """

    def __init__(
        self, store: Store, campaigns: CampaignServer, settings: ExperimentSettings | None = None,
        *, default_group: str = "default",
    ) -> None:  # fmt: skip
        settings = settings or ExperimentSettings()
        self.store = store
        self.campaigns = campaigns
        self.default_group = default_group
        self.exposures: BufferedLog[ExposureRecord] = _buffered(
            store.put_exposures, "exposures", settings
        )
        answers: BufferedLog[AnswerRecord] = _buffered(store.put_answers, "answers", settings)
        self.metrics = MetricAttributions(store, answers)
        self._records: dict[tuple[str, str], tuple[float, ExperimentRecord, ExperimentSpec]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.exposures.close()
        self.metrics.answers.close()

    # definitions ------------------------------------------------------------------------------
    def create(
        self, group: str, name: str, arms: Mapping[str, tuple[str, float]] | Sequence[Any],
        *, metric: str | None = None, attribution_window: int | str = DEFAULT_WINDOW_SECONDS,
    ) -> ExperimentRecord:  # fmt: skip
        """A draft experiment: ``arms`` maps arm name -> (campaign, percent of users); the
        arm named ``control`` (else the first) is the baseline.

        Raises:
            InvalidInput: a bad name, arm, weight or window (named). NotFound: a campaign
            that does not exist. AlreadyExists: the name is taken.
        """
        check_name(name)
        parsed = parse_arms(arms)
        for arm in parsed:
            self.store.get_campaign(group, arm.campaign)  # NotFound names it
        if metric is not None and not metric.strip():
            raise InvalidInput("metric: give an event type, or leave it out (any event)")
        spec = ExperimentSpec(arms=parsed, metric=metric,
                              attribution_window=parse_window(attribution_window))  # fmt: skip
        record = ExperimentRecord(group=group, name=name, body=spec.model_dump(),
                                  created_at=time.time())  # fmt: skip
        self.store.put_experiment(record)
        return self.store.get_experiment(group, name)

    def get(self, group: str, name: str) -> ExperimentRecord:
        return self.store.get_experiment(group, name)

    def list(self, group: str) -> list[ExperimentRecord]:
        return self.store.list_experiments(group)

    def start(self, group: str, name: str) -> ExperimentRecord:
        """draft -> running: from now on answers are split and logged."""
        return self._move(group, name, "running", ("draft",))

    def stop(self, group: str, name: str) -> ExperimentRecord:
        """running -> stopped: answers come from the control arm, nothing is logged."""
        return self._move(group, name, "stopped", ("running",))

    def delete(self, group: str, name: str) -> None:
        """Remove the experiment and its exposures (the events stay)."""
        self.exposures.flush()  # none of its buffered exposures may land after the delete
        self.store.delete_experiment(group, name)
        self._forget(group, name)

    def _move(self, group: str, name: str, to: str, allowed: tuple[str, ...]) -> ExperimentRecord:
        if to == "stopped":
            self.exposures.flush()
        record = self.store.transition_experiment(group, name, to=to, allowed_from=allowed,
                                                  at=time.time())  # fmt: skip
        self._forget(group, name)
        return record

    def describe(self, record: ExperimentRecord) -> dict[str, Any]:
        """The record as JSON-able data (what ``show`` prints)."""
        spec = ExperimentSpec.model_validate(record.body)
        return {
            "group": record.group, "name": record.name, "state": record.state,
            "arms": [a.model_dump() for a in spec.arms], "control": spec.control.name,
            "metric": spec.metric, "attribution_window_seconds": spec.attribution_window,
            "started_at": record.started_at, "stopped_at": record.stopped_at,
            "created_at": record.created_at, "updated_at": record.updated_at,
        }  # fmt: skip

    # answers ----------------------------------------------------------------------------------
    def arm_for(self, name: str, user_id: str, *, group: str | None = None) -> str:
        """The arm ``user_id`` gets in experiment ``name`` (docs/experiments.md, the hash)."""
        _, spec = self._experiment(group or self.default_group, name)
        return _assigned(name, spec, user_id).name

    def recommend(self, group: str, name: str, request: CampaignRequest) -> dict[str, Any]:
        """The answer of the user's arm's campaign, with ``experiment``, ``arm`` and
        ``exposed`` (whether it was logged as an exposure: only while running). A draft or
        stopped experiment answers from the control arm.

        Raises:
            InvalidInput: no user id (arms are assigned by user), or the request's own errors.
        """
        if not request.user_id:
            raise InvalidInput(
                f"userId: experiment {name!r} assigns arms by user; give the user's id"
            )
        record, spec = self._experiment(group, name)
        running = record.state == "running"
        arm = _assigned(name, spec, request.user_id) if running else spec.control
        answer = self.campaigns.recommend(group, arm.campaign, request)
        if running:
            self.exposures.add(group, ExposureRecord(
                experiment=name, arm=arm.name, user_id=request.user_id,
                recommendation_id=str(answer["recommendationId"]), campaign=arm.campaign,
                source=str(answer.get("source")), timestamp=time.time(),
                items="|".join(str(i["itemId"]) for i in answer.get("itemList", ())),
            ))  # fmt: skip
        return {**answer, "experiment": name, "arm": arm.name, "exposed": running}

    def _experiment(self, group: str, name: str) -> tuple[ExperimentRecord, ExperimentSpec]:
        now = time.monotonic()
        cached = self._records.get((group, name))
        if cached is not None and now - cached[0] < RECORD_SECONDS:
            return cached[1], cached[2]
        record = self.store.get_experiment(group, name)
        spec = ExperimentSpec.model_validate(record.body)
        with self._lock:
            self._records[(group, name)] = (now, record, spec)
        return record, spec

    def _forget(self, group: str, name: str) -> None:
        with self._lock:
            self._records.pop((group, name), None)

    # reports ----------------------------------------------------------------------------------
    def report(self, group: str, name: str, *, cuped: bool = True) -> dict[str, Any]:
        """Per arm: users, exposures, conversions, rates, values, lifts over the control with
        95% intervals and p-values; the sample-ratio check; CUPED-adjusted lifts (``cuped``).
        Computed from the store each time (docs/experiments.md defines every figure)."""
        self.exposures.flush()
        record = self.store.get_experiment(group, name)
        spec = ExperimentSpec.model_validate(record.body)
        exposures = self.store.read_exposures(group, name)
        start = record.started_at if record.started_at is not None else time.time()
        end = record.stopped_at if record.stopped_at is not None else time.time()
        # A stopped experiment's answers can cause outcomes for one window more.
        until = end + spec.attribution_window if record.stopped_at is not None else 2**62
        events = self.store.read_outcomes(group, event_type=spec.metric, since=int(start),
                                          until=until)  # fmt: skip
        before = None
        if cuped and record.started_at is not None:
            # At least one attribution window long, so a report soon after the start has
            # some history to adjust with.
            length = max(end - start, spec.attribution_window)
            before = self.store.read_outcomes(
                group, event_type=spec.metric, since=start - length, until=start - 1
            )
        return build_report(record, spec, exposures, events, before)

    def metric_report(self, group: str, name: str) -> dict[str, Any]:
        """A metric attribution's report (see :mod:`tastebud.experiments.metrics`)."""
        self.exposures.flush()
        return self.metrics.report(group, name, exposures=self.store.read_exposures(group))


def _buffered(
    write: Callable[[str, Sequence[T]], int], name: str, settings: ExperimentSettings
) -> BufferedLog[T]:
    return BufferedLog(
        write, name=name, flush_seconds=settings.flush_seconds, batch=settings.batch,
        capacity=settings.buffer_capacity, max_wait_seconds=settings.max_wait_seconds,
    )  # fmt: skip


def _assigned(name: str, spec: ExperimentSpec, user_id: str) -> Arm:
    return spec.arms[arm_index(name, user_id, spec.bounds)]
