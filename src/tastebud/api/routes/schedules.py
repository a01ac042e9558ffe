"""Retraining schedules: create, list, pause, resume and delete them (admin).

The runs themselves happen in ``tastebud serve`` and ``tastebud worker`` processes; each shows as
a ``scheduled-training`` job, and the schedule's ``lastRun`` says how it went.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Depends, Response

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import ScheduleIn, ScheduleList, ScheduleOut, camel_keys
from tastebud.engine import Engine
from tastebud.jobs.schedules import ScheduleSpec
from tastebud.store import ScheduleRecord

PREFIX = "/v1/dataset-groups/{group}/schedules"
router = APIRouter(prefix=PREFIX, tags=["schedules"], dependencies=[Depends(require_admin)])


def schedule_out(engine: Engine, record: ScheduleRecord) -> ScheduleOut:
    return cast(ScheduleOut, camel_keys(engine.schedules.describe(record)))


@router.post("", status_code=201)
def create(group: str, body: ScheduleIn, engine: EngineDep) -> ScheduleOut:
    """Retrain ``solution`` on a trigger; ``latest`` campaigns follow each successful run."""
    spec = ScheduleSpec.parse(
        every=body.every, cron=body.cron, after_events=body.after_events,
        max_train_seconds=body.max_train_seconds, max_metric_drop=body.max_metric_drop,
        metric=body.metric, incremental=body.incremental,
    )  # fmt: skip
    record = engine.schedules.create(group, body.name, solution=body.solution, spec=spec,
                                     replace=body.replace)  # fmt: skip
    return schedule_out(engine, record)


@router.get("")
def list_schedules(group: str, engine: EngineDep) -> ScheduleList:
    return {"schedules": [schedule_out(engine, s) for s in engine.schedules.in_group(group)]}


@router.get("/{name}")
def get(group: str, name: str, engine: EngineDep) -> ScheduleOut:
    return schedule_out(engine, engine.schedules.get(group, name))


@router.delete("/{name}", status_code=204)
def delete(group: str, name: str, engine: EngineDep) -> Response:
    engine.schedules.delete(group, name)
    return Response(status_code=204)


@router.post("/{name}/pause")
def pause(group: str, name: str, engine: EngineDep) -> ScheduleOut:
    """No new runs until resumed (a run in progress finishes)."""
    return schedule_out(engine, engine.schedules.pause(group, name))


@router.post("/{name}/resume")
def resume(group: str, name: str, engine: EngineDep) -> ScheduleOut:
    """Runs again; time triggers restart from now (runs missed while paused are skipped)."""
    return schedule_out(engine, engine.schedules.resume(group, name))
