"""Batch inference and segment jobs: JSON Lines in, JSON Lines (and key-value entries) out.

A job resolves its solution version once (every line is answered by the same model), cuts the
input into shards, answers each shard into a part file through an executor, stops when its
error budget is spent, and joins the parts into the output. Run again with the same output, a
job killed half-way goes on from the last line it wrote (see :mod:`tastebud.batch.shards`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastebud.batch.executors import Executor, check_executor, run_local, run_processes, run_ray
from tastebud.batch.formats import JobKind
from tastebud.batch.scoring import BatchOptions
from tastebud.batch.shards import Parts, Shard, plan_shards
from tastebud.batch.worker import ShardJob, ShardResult, answer_shard
from tastebud.errors import InvalidInput
from tastebud.jobs.runner import JobRunner, ProgressFn
from tastebud.recipes import UserAffinity
from tastebud.serving.precomputed import PrecomputedTarget
from tastebud.serving.recommend import check_k
from tastebud.serving.service import Recommender
from tastebud.settings import Settings
from tastebud.store import JobRecord, Store

_log = logging.getLogger(__name__)

SHARD_LINES = 20_000


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """One batch job as a user asks for it."""

    group: str
    kind: JobKind
    input: Path
    output: Path | None = None
    solution: str | None = None
    version_id: str | None = None
    num_results: int = 25
    filter_name: str | None = None
    max_error_rate: float = 0.1
    explain: bool = False
    to: PrecomputedTarget | None = None  # also write each answer to this key-value store
    executor: Executor = "local"
    workers: int = 1
    shard_lines: int = SHARD_LINES

    def describe(self) -> dict[str, Any]:
        """What makes two runs the same job (a resumed run must match its first run)."""
        stat = self.input.stat()
        return {"kind": self.kind, "input": str(self.input.resolve()), "input_bytes": stat.st_size,
                "input_mtime_ns": stat.st_mtime_ns, "num_results": self.num_results,
                "filter": self.filter_name, "explain": self.explain,
                # The target's digest: its URL may hold a password, and this is written to disk.
                "to": None if self.to is None else hashlib.sha256(
                    repr((self.to.url, self.to.key_prefix)).encode()).hexdigest()[:16],
                "shard_lines": self.shard_lines}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchResult:
    lines: int
    errors: int
    resumed: int
    version_id: str
    output: str | None
    seconds: float
    samples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "errors": self.errors, "resumed_lines": self.resumed,
                "solution_version": self.version_id, "output": self.output,
                "seconds": round(self.seconds, 3), "first_errors": list(self.samples)}  # fmt: skip


class BatchFailed(InvalidInput):
    """The job spent its error budget; its output was not written."""

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result


class BatchService:
    """Runs batch jobs against one store's trained versions."""

    def __init__(
        self, store: Store, recommender: Recommender, jobs: JobRunner, settings: Settings
    ) -> None:
        self.store = store
        self.recommender = recommender
        self.jobs = jobs
        self.settings = settings

    def start(self, spec: BatchSpec) -> JobRecord:
        """Queue the job in the background; progress shows in ``GET /v1/jobs/{id}``."""
        self._check(spec)
        params = {"kind": spec.kind, "input": str(spec.input), "solution": spec.solution,
                  "solution_version": spec.version_id,
                  "output": None if spec.output is None else str(spec.output)}  # fmt: skip

        def work(job_id: str, progress: ProgressFn) -> Mapping[str, object]:
            return self.run(spec, progress=progress).to_dict()

        return self.jobs.submit(group=spec.group, kind=f"batch-{spec.kind}", params=params, fn=work)

    def run(self, spec: BatchSpec, *, progress: ProgressFn | None = None) -> BatchResult:
        """Run the job in this thread.

        Raises:
            InvalidInput: a bad option, or an output holding another job's unfinished run.
            BatchFailed: more lines failed than ``max_error_rate`` allows.
            NotFound / NotReady: no such solution, version or filter; nothing trained yet.
        """
        started = time.monotonic()
        self._check(spec)
        parts = Parts.for_output(spec.output) if spec.output else self._scratch(spec)
        version_id = self._version(spec, parts)  # before any file is made: it may fail
        shards = parts.open(spec.describe(), plan_shards(spec.input, spec.shard_lines))
        parts.set_version(version_id)
        job = ShardJob(
            group=spec.group, kind=spec.kind, version_id=version_id, input=spec.input,
            parts=parts.folder,
            options=BatchOptions(num_results=spec.num_results, filter_name=spec.filter_name,
                                 explain=spec.explain),
            target=spec.to,
            settings=self._portable_settings(),
        )  # fmt: skip
        total = sum(shard.lines for shard in shards)
        results = self._execute(spec, job, shards, total, progress)
        result = BatchResult(
            lines=total, errors=sum(r.errors for r in results),
            resumed=sum(r.resumed for r in results), version_id=version_id,
            output=None if spec.output is None else str(spec.output),
            seconds=time.monotonic() - started,
            samples=tuple(s for r in sorted(results, key=lambda r: r.shard) for s in r.samples)[:5],
        )  # fmt: skip
        if len(results) < len(shards) or result.errors > spec.max_error_rate * total:
            parts.remove()
            raise BatchFailed(_budget_message(result, spec.max_error_rate), result)
        if spec.output is not None:
            parts.join(shards, spec.output)
        else:
            parts.remove()
        _log.info("batch job done kind=%s lines=%d errors=%d resumed=%d seconds=%.1f",
                  spec.kind, total, result.errors, result.resumed, result.seconds)  # fmt: skip
        return result

    def _execute(
        self, spec: BatchSpec, job: ShardJob, shards: list[Shard], total: int,
        progress: ProgressFn | None,
    ) -> list[ShardResult]:  # fmt: skip
        """Every shard's result, or fewer when the error budget ran out first."""
        done = [0]

        def advance(lines: int) -> None:
            done[0] += lines
            if progress is not None:
                progress(done[0] / max(total, 1), f"{done[0]:,} of {total:,} lines")

        if spec.executor == "local":
            stream = run_local(shards, lambda shard: answer_shard(
                self.recommender, job, shard, on_lines=advance))  # fmt: skip
        elif spec.executor == "processes":
            stream = run_processes(job, shards, spec.workers)
        else:
            stream = run_ray(job, shards, spec.workers)
        results: list[ShardResult] = []
        for result in stream:
            results.append(result)
            if spec.executor != "local":
                advance(result.answered + result.resumed)
            if sum(r.errors for r in results) > spec.max_error_rate * total:
                stream.close()  # cancels the shards that have not started
                break
        return results

    def _check(self, spec: BatchSpec) -> None:
        if spec.kind not in ("recommend", "segment"):
            raise InvalidInput(f"kind: expected 'recommend' or 'segment', got {spec.kind!r}")
        if not spec.input.is_file():
            raise InvalidInput(f"input: {spec.input}: no such file")
        if spec.output is None and spec.to is None:
            raise InvalidInput("give an output file, a key-value target (--to redis://…), or both")
        if spec.output is not None and spec.output.resolve() == spec.input.resolve():
            raise InvalidInput("output: must not be the input file")
        if not 0.0 <= spec.max_error_rate <= 1.0:
            raise InvalidInput(f"max_error_rate: expected 0 to 1, got {spec.max_error_rate}")
        if spec.shard_lines < 1:
            raise InvalidInput(f"shard_lines: expected 1 or more, got {spec.shard_lines}")
        check_k(spec.num_results)
        check_executor(spec.executor, spec.workers)
        if spec.filter_name is not None:
            self.store.get_filter(spec.group, spec.filter_name)  # NotFound names it

    def _version(self, spec: BatchSpec, parts: Parts) -> str:
        """The version that answers: the one a resumed run used, else the one named, else the
        solution's newest active version."""
        earlier = parts.version()
        if earlier is not None and spec.version_id not in (None, earlier):
            raise InvalidInput(
                f"{parts.folder} holds an unfinished run answered by version {earlier!r}, not "
                f"{spec.version_id!r}; delete that folder or choose another output"
            )
        wanted = earlier or spec.version_id
        version = self.recommender.resolve_version(spec.group, solution=spec.solution,
                                                   version_id=wanted)  # fmt: skip
        if spec.kind == "segment" and not isinstance(version.model, UserAffinity):
            raise InvalidInput(f"recipe {version.recipe!r} does not answer segments; "
                               "use an item-affinity solution")  # fmt: skip
        return version.id

    def _scratch(self, spec: BatchSpec) -> Parts:
        """Parts of a job with no output file (key-value output only), found again on rerun."""
        key = hashlib.blake2b(repr(sorted(spec.describe().items())).encode(), digest_size=8)
        return Parts(self.settings.home / "batch" / f"{key.hexdigest()}.parts")

    def _portable_settings(self) -> dict[str, Any]:
        """Settings a worker in another process or machine rebuilds (absolute paths)."""
        absolute = self.settings.model_copy(update={"home": self.settings.home.resolve()})
        dumped: dict[str, Any] = absolute.model_dump(mode="json")
        return dumped


def _budget_message(result: BatchResult, rate: float) -> str:
    share = result.errors / max(result.lines, 1)
    first = "; ".join(result.samples)
    return (f"{result.errors:,} of {result.lines:,} lines failed ({share:.1%}), over the error "
            f"budget of {rate:.1%}; no output written. First errors: {first}")  # fmt: skip
