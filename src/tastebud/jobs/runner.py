"""Background jobs: run a function on a worker thread, report status and progress.

Progress lives in memory while a job runs (a bulk import holds the write transaction, so it can't
write progress rows); the store keeps the record at start and at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from tastebud.errors import TastebudError
from tastebud.store import JobRecord, Store

_log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
JobFn = Callable[[str, ProgressFn], Mapping[str, Any]]  # (job id, progress)


class JobRunner:
    def __init__(self, store: Store, *, workers: int = 1) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tastebud-job")
        self._live: dict[str, JobRecord] = {}
        self._lock = threading.Lock()

    def submit(self, *, group: str, kind: str, params: Mapping[str, Any], fn: JobFn) -> JobRecord:
        job = self._record(group, kind, params, status="queued")
        self._pool.submit(self._run, job, fn)
        return job

    def run(self, *, group: str, kind: str, params: Mapping[str, Any], fn: JobFn) -> JobRecord:
        """Run a job in the calling thread (a scheduler's own); returns its final record.

        Stored as ``running`` from the start, so other processes listing jobs see it; a
        failure ends up in the record (status ``failed``, ``error``), it is not raised."""
        return self._run(self._record(group, kind, params, status="running"), fn)

    def _record(
        self, group: str, kind: str, params: Mapping[str, Any], *,
        status: Literal["queued", "running"],
    ) -> JobRecord:  # fmt: skip
        """A new job, stored and shown as live."""
        now = time.time()
        job = JobRecord(
            id=f"{kind}-{uuid.uuid4().hex[:12]}", group=group, kind=kind, status=status,
            params=dict(params), created_at=now, updated_at=now,
        )  # fmt: skip
        self._store.save_job(job)
        self._set(job)
        return job

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            live = self._live.get(job_id)
        return live if live is not None else self._store.get_job(job_id)

    def _set(self, job: JobRecord) -> None:
        with self._lock:
            self._live[job.id] = job

    def _update(self, job_id: str, **changes: Any) -> JobRecord:
        with self._lock:
            job = dataclasses.replace(self._live[job_id], updated_at=time.time(), **changes)
            self._live[job_id] = job
        return job

    def _final(self, job_id: str, **changes: Any) -> JobRecord:
        """The finished record, not yet shown: it is stored first, so no reader sees a final
        status in memory that the store (other processes) does not have yet."""
        with self._lock:
            return dataclasses.replace(self._live[job_id], updated_at=time.time(), **changes)

    def _run(self, job: JobRecord, fn: JobFn) -> JobRecord:
        self._update(job.id, status="running")

        def progress(fraction: float, message: str) -> None:
            self._update(job.id, progress=round(fraction, 4), result={"message": message})

        try:
            result = fn(job.id, progress)
        except TastebudError as exc:
            partial = getattr(exc, "result", None)  # e.g. the counts of a rejected import
            final = self._final(
                job.id, status="failed", error=exc.message,
                result=partial.to_dict() if partial is not None else None,
            )  # fmt: skip
        except Exception as exc:
            _log.exception("job failed id=%s kind=%s", job.id, job.kind)
            final = self._final(job.id, status="failed", error=f"internal error: {exc}")
        else:
            final = self._final(job.id, status="succeeded", progress=1.0, result=dict(result))
        self._store.save_job(final)
        with self._lock:
            del self._live[job.id]
        return final

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
