"""Where a batch job's shards run: in this process, in a local process pool, or on Ray.

No cluster code of our own: a process pool for one machine's cores, Ray (``pip install
tastebud[ray]``; ``RAY_ADDRESS`` names a running cluster, else a local one starts) for many
machines. Every executor hands results back as shards finish, so the job can stop early when
its error budget is spent.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Literal

from tastebud.batch.shards import Shard
from tastebud.batch.worker import ShardJob, ShardResult, answer_shard_remote
from tastebud.errors import InvalidInput

Executor = Literal["local", "processes", "ray"]
EXECUTORS: tuple[Executor, ...] = ("local", "processes", "ray")
Results = Generator[ShardResult, None, None]  # closing it cancels the shards not started


def check_executor(executor: str, workers: int) -> Executor:
    if executor not in EXECUTORS:
        raise InvalidInput(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers < 1:
        raise InvalidInput(f"workers: expected 1 or more, got {workers}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InvalidInput("executor 'ray' needs Ray: pip install 'tastebud[ray]'") from None
    return executor


def run_local(shards: Sequence[Shard], answer: Callable[[Shard], ShardResult]) -> Results:
    for shard in shards:
        yield answer(shard)


def run_processes(job: ShardJob, shards: Sequence[Shard], workers: int) -> Results:
    # Spawned, not forked: the parent holds threads, database connections and torch state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(answer_shard_remote, job, shard) for shard in shards]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def run_ray(job: ShardJob, shards: Sequence[Shard], workers: int) -> Results:
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local instance sized for this job
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1, max_retries=2)(answer_shard_remote)
    pending = [task.remote(job, shard) for shard in shards]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)
