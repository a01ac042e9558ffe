"""Data-parallel training of the sequential recipe: N processes, one model (PyTorch DDP).

Every rank runs the same fit on the same data: the same seeded draws give every rank the same
epoch windows and batches, and each rank trains on its share of each batch (every N-th window,
so the shares have alike lengths). DDP all-reduces the gradients during backward, so the
ranks' weights stay identical, and a global batch keeps ``batch_size`` windows: the schedule,
the steps per epoch and the learning rate are those of one process. Validation is split over
the ranks and summed; rank 0's figures and clock decide the best epoch, early stopping and the
time budget on every rank, so all ranks stop at the same step.

A process group (gloo on CPU, NCCL on CUDA) is joined by the entry point (``tastebud.train``);
without one, :func:`current_team` is a team of one whose hooks cost nothing.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from tastebud.errors import InvalidInput
from tastebud.recipes.base import IntArray

if TYPE_CHECKING:
    from tastebud.recipes.sequential.train import Validation

# A collective waits this long for the other ranks (a rank that died fails the others then).
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
PROCESSES_PER_CORE = 4  # more ranks than this only share the cores thinner

LossFn = Callable[[], Tensor]
Forward = Callable[[LossFn], Tensor]


@dataclass(frozen=True)
class Team:
    """The processes training one model; ``size`` 1 (the default) is one process, for which
    every hook is the identity."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"  # where collectives' tensors live (NCCL: the rank's GPU)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard(self, batch: IntArray) -> IntArray:
        """This rank's windows of a global batch: every ``size``-th from ``rank``; a batch
        smaller than the team lends its windows again, so every rank takes a step."""
        if self.size == 1:
            return batch
        picks = np.arange(self.rank, max(len(batch), self.size), self.size) % len(batch)
        return batch[picks]

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (a deadline passed, on anyone's clock)."""
        if self.size == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def agree(self, *values: float) -> tuple[float, ...]:
        """Rank 0's ``values`` on every rank: its decisions are everyone's."""
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return tuple(float(v) for v in tensor.tolist())

    def mean_over(self, validation: Validation, measure: Callable[[Validation], float]) -> float:
        """``measure`` (a mean over users) of the whole validation set, each rank measuring a
        contiguous share of its users."""
        if self.size == 1:
            return measure(validation)
        low = len(validation) * self.rank // self.size
        high = len(validation) * (self.rank + 1) // self.size
        part = share(validation, low, high)
        total = torch.tensor([measure(part) * len(part)], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total.item()) / max(len(validation), 1)

    def forward(self, model: nn.Module, windows: IntArray) -> Forward:
        """How the loop computes a step's loss: directly in one process, through DDP in a team
        (whose backward then all-reduces the gradients). Checks first that every rank holds
        the same windows: otherwise they would train on different data."""
        if self.size == 1:
            return direct
        self.check_same(windows)
        wrapped = DistributedDataParallel(
            _LossModule(model), device_ids=None,
            # buffers (feature bags, known items) never change in training: no sync per step
            forward_sync_buffers=False, gradient_as_bucket_view=True,
            # every parameter takes part in each step's loss (a module that did not would
            # make DDP fail loudly): no graph traversal per step to find unused ones
        )  # fmt: skip
        # the same init everywhere (DDP copied rank 0's), but each rank its own dropout masks
        torch.manual_seed(torch.initial_seed() + self.rank)
        return cast(Forward, wrapped)

    def check_same(self, windows: IntArray) -> None:
        """Raise on every rank when the ranks' training windows differ (they read the store
        at different moments, or different data)."""
        if self._differ(np.ascontiguousarray(windows).tobytes()):
            raise InvalidInput(
                "the training processes read different data (events or items arrived while they "
                "started); train again"
            )

    def check_synced(self, model: nn.Module) -> None:
        """Raise on every rank when the ranks' weights differ: DDP keeps them identical, so a
        difference means a step went without its all-reduce."""
        if self.size == 1:
            return
        weights = [p.detach().float().cpu().numpy().tobytes() for p in model.parameters()]
        if self._differ(b"".join(weights)):
            raise RuntimeError("the training processes ended with different weights")

    def _differ(self, data: bytes) -> bool:
        """Whether ``data`` (its length and checksum) differs between ranks."""
        mine = torch.tensor([float(len(data)), float(zlib.crc32(data))], dtype=torch.float64,
                            device=self.device)  # fmt: skip
        low, high = mine.clone(), mine.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        return not torch.equal(low, high)


class _LossModule(nn.Module):
    """DDP's forward runs the loop's loss closure, so DDP sees the graph of whatever loss the
    loop computes while the loss keeps calling the model's own methods."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, loss: LossFn) -> Tensor:
        return loss()


def direct(loss: LossFn) -> Tensor:
    """One process's step: the loss as the loop computes it."""
    return loss()


def share(validation: Validation, low: int, high: int) -> Validation:
    """Users ``low:high`` of ``validation``, their seen items re-based."""
    first, stop = validation.seen_indptr[low], validation.seen_indptr[high]
    return dataclasses.replace(
        validation,
        users=validation.users[low:high],
        tokens=validation.tokens[low:high],
        features=None if validation.features is None else validation.features[low:high],
        lengths=validation.lengths[low:high],
        seen_indptr=validation.seen_indptr[low : high + 1] - first,
        seen_items=validation.seen_items[first:stop],
        targets=validation.targets[low:high],
    )


def current_team() -> Team:
    """The process group this process joined (see :func:`joined`), or a team of one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return Team()
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = f"cuda:{torch.cuda.current_device()}"
    return Team(rank=dist.get_rank(), size=dist.get_world_size(), device=device)


def backend_for(device: str) -> str:
    """``nccl`` for a CUDA fit (``device`` cuda, or auto with a GPU), else ``gloo``."""
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


def check_processes(count: int, *, cores: int, recipe: str, device: str = "auto") -> None:
    """Raise InvalidInput naming what is wrong with training ``recipe`` on ``count`` processes.

    Raises:
        InvalidInput: fewer than 1, more than ``PROCESSES_PER_CORE`` per core, several with a
            recipe other than ``sequential``, or more than the GPUs of a CUDA fit.
    """
    if count < 1:
        raise InvalidInput(f"--nproc {count}: must be at least 1")
    most = cores * PROCESSES_PER_CORE
    if count > most:
        raise InvalidInput(
            f"--nproc {count}: at most {most} on this machine ({cores} cores, "
            f"{PROCESSES_PER_CORE} processes per core)"
        )
    if count > 1 and recipe != "sequential":
        raise InvalidInput(
            f"--nproc {count}: recipe {recipe!r} trains in one process; only 'sequential' "
            "trains on several (PyTorch DDP)"
        )
    gpus = torch.cuda.device_count()
    if count > 1 and backend_for(device) == "nccl" and count > gpus:
        raise InvalidInput(f"--nproc {count}: a CUDA fit runs one process per GPU ({gpus} here)")


def share_cores(count: int) -> int:
    """Give torch this process's share of the cores among ``count`` processes (at least one
    thread each); returns it. Ranks on threads of their own beat one process on all threads:
    a small model's ops are too short to split well."""
    threads = max(1, len(os.sched_getaffinity(0)) // count)
    torch.set_num_threads(threads)
    return threads


@contextmanager
def joined(rank: int, size: int, backend: str) -> Iterator[Team]:
    """Join the process group of ``size`` ranks (``MASTER_ADDR``/``MASTER_PORT`` from the
    environment, as torchrun sets them); leave it on exit."""
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group(backend, rank=rank, world_size=size, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield current_team()
    finally:
        dist.destroy_process_group()
