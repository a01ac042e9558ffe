"""``python -m tastebud.train SOLUTION``: train a new version, in this process or as one rank of
a distributed fit (``torchrun --nproc-per-node N -m tastebud.train SOLUTION``; ``tastebud train
SOLUTION --nproc N`` starts the N processes itself, see :func:`train_in_processes`).

The ranks come from torchrun's variables (RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
MASTER_PORT). All ranks read the same events (rank 0's ``last_seq``) and fit together (see
``recipes/sequential/distributed.py``); rank 0 keeps the records: it creates the version (or
trains the one ``--version`` names), reports progress on stderr and writes the artifacts.
Settings come from the environment (``TASTEBUD_*``), as for the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tastebud.errors import TastebudError
from tastebud.jobs.training import VersionTrainer, train_version
from tastebud.messaging.inbox import free_port
from tastebud.recipes.sequential.distributed import (
    backend_for,
    check_processes,
    joined,
    share_cores,
)
from tastebud.settings import Settings
from tastebud.store import SolutionVersionRecord, Store, open_store

if TYPE_CHECKING:
    from tastebud.engine import Engine

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0  # the other ranks get this long to stop when one has failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tastebud.train", description=__doc__)
    parser.add_argument("solution", help="the solution to train")
    parser.add_argument("--group", help="dataset group (default: settings)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--version", help="train this version (status training), not a new one")
    args = parser.parse_args(argv)
    rank, size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    settings = Settings()
    try:
        store = open_store(settings.store_url, limits=settings.store)
        try:
            version = run_rank(store, settings, args, rank=rank, size=size)
        finally:
            store.close()
    except TastebudError as error:
        print(f"error{'' if rank == 0 else f' (rank {rank})'}: {error.message}", file=sys.stderr)
        return 1
    if version is not None:
        print(f"version {version.id} {version.status}", file=sys.stderr)
    return 0 if version is None or version.status != "failed" else 1


def run_rank(
    store: Store, settings: Settings, args: argparse.Namespace, *, rank: int, size: int
) -> SolutionVersionRecord | None:
    """This process's part: the trained version on rank 0, None on the others. (The store
    alone, not an engine: a rank starts faster without the services it would not use.)"""
    group = args.group or settings.default_group
    solution = store.get_solution(group, args.solution)
    device = str(dict(solution.body).get("params", {}).get("device", "auto"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    check_processes(local, cores=len(os.sched_getaffinity(0)), recipe=solution.recipe,
                    device=device)  # fmt: skip
    threads = share_cores(local)
    trainer = VersionTrainer(store, settings.artifacts, threads=threads)
    if size == 1:
        return _train_leader(trainer, args, group, up_to_seq=None)
    with joined(rank, size, backend_for(device)) as team:
        (last_seq,) = team.agree(float(store.last_seq(group)))  # exact below 2**53
        if team.leader:
            return _train_leader(trainer, args, group, up_to_seq=int(last_seq))
        train_version(
            store, solution, version_id=args.version or "", artifacts=settings.artifacts,
            seed=args.seed, threads=threads, up_to_seq=int(last_seq), write=False,
        )  # fmt: skip
        return None


def _train_leader(
    trainer: VersionTrainer, args: argparse.Namespace, group: str, *, up_to_seq: int | None
) -> SolutionVersionRecord:
    version = (
        trainer.store.get_solution_version(args.version)
        if args.version
        else trainer.create(group, args.solution)
    )
    prefix = f"train {args.solution}:"

    def progress(fraction: float, message: str) -> None:
        print(f"{prefix} {fraction:4.0%} {message}", file=sys.stderr, flush=True)

    return trainer.train(version, seed=args.seed, progress=progress, up_to_seq=up_to_seq)


def train_in_processes(
    eng: Engine, group: str, solution: str, *, nproc: int, seed: int = 0
) -> SolutionVersionRecord:
    """Train a new version of ``solution`` on ``nproc`` local processes (as ``torchrun
    --standalone`` would start them) and return it; ``nproc`` 1 trains in this process.

    Raises:
        InvalidInput: ``nproc`` out of bounds, or a recipe that trains in one process only.
        TastebudError: the training failed (the version is recorded as failed).
    """
    record = eng.store.get_solution(group, solution)
    device = str(dict(record.body).get("params", {}).get("device", "auto"))
    check_processes(nproc, cores=len(os.sched_getaffinity(0)), recipe=record.recipe,
                    device=device)  # fmt: skip
    if nproc == 1:
        return eng.train(group, solution, seed=seed)
    version = eng.training.create(group, solution)
    command = [sys.executable, "-m", "tastebud.train", solution, "--group", group,
               "--seed", str(seed), "--version", version.id]  # fmt: skip
    codes = run_ranks(command, nproc, _settings_env(eng.settings))
    exits = ", ".join(f"rank {rank} {code}" for rank, code in enumerate(codes))
    done = eng.solution_version(version.id)
    if done.status == "training":  # rank 0 died before it could say so
        reason = f"a training process stopped (exit codes: {exits})"
        failed = dataclasses.replace(done, status="failed", updated_at=time.time(),
                                     body={**done.body, "error": reason})  # fmt: skip
        eng.store.save_solution_version(failed)
        done = failed
    if done.status == "failed":
        raise TastebudError(
            f"training {solution!r} failed: {done.body.get('error')} (exit codes: {exits})"
        )
    return done


def _settings_env(settings: Settings) -> dict[str, str]:
    """The settings the CLI was given (options or environment), for the ranks' environment."""
    env = {"TASTEBUD_HOME": str(settings.home), "TASTEBUD_DEFAULT_GROUP": settings.default_group}
    if settings.database_url:
        env["TASTEBUD_DATABASE_URL"] = settings.database_url
    return env


def run_ranks(command: list[str], nproc: int, env: dict[str, str]) -> list[int]:
    """Run ``command`` as ranks 0..nproc-1 of one process group on this host (with ``env``
    added to this process's environment); once one fails, the others get a grace period to
    notice, then are stopped. Their exit codes, by rank."""
    shared = os.environ | env | {
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
    }  # fmt: skip
    ranks = [
        subprocess.Popen(command, env=shared | {"RANK": str(r), "LOCAL_RANK": str(r)})
        for r in range(nproc)
    ]
    failed_at: float | None = None
    try:
        while any(rank.poll() is None for rank in ranks):
            if failed_at is None and any(rank.returncode for rank in ranks):
                failed_at = time.monotonic()  # the others notice and record it, or are stopped
            if failed_at is not None and time.monotonic() - failed_at > STOP_GRACE_SECONDS:
                break
            time.sleep(POLL_SECONDS)
    finally:
        _stop(ranks)
    return [rank.returncode for rank in ranks]


def _stop(ranks: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the ranks still running (then kill those that ignore it)."""
    for rank in ranks:
        if rank.poll() is None:
            rank.terminate()
    for rank in ranks:
        try:
            rank.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            rank.kill()
            rank.wait()


if __name__ == "__main__":
    sys.exit(main())
