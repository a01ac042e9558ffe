"""The training heap setting: a freed large block is reused without new page faults."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch

from tastebud.recipes.sequential import heap
from tastebud.recipes.sequential.heap import large_blocks_kept

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="glibc's mallopt is Linux-only")

BLOCK = 16 << 20  # float32 elements: 64 MiB, above glibc's largest mmap threshold
# The freed block is this much larger than the next: a small allocation in between (Python's,
# torch's) may be carved from the start of the free chunk, and the next block must still fit.
SLACK = 1 << 18  # 1 MiB


def _faults_of_a_reallocation() -> int:
    """Minor page faults while a 64 MiB block is allocated and written right after a block
    of about the same size was freed (fresh pages fault once each; reused heap pages do not)."""
    first = torch.ones(BLOCK + SLACK)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = torch.ones(BLOCK)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


def _fewest_faults(rounds: int = 4) -> int:
    """The fewest faults of a few reallocations: the steady state. The heap may hold free
    chunks whose pages an earlier ``malloc_trim`` gave back; the first reuse of each faults."""
    return min(_faults_of_a_reallocation() for _ in range(rounds))


def _mapped_apart(elements: int) -> bool:
    """Whether a new block lies in a mapping of its own rather than in the heap (brk). A
    block larger than any freed before cannot come from the heap's free chunks."""
    address = torch.ones(elements).data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("[heap]"):
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            return not start <= address < end
    return True


def test_large_blocks_are_reused_inside_and_mapped_again_after() -> None:
    pages = BLOCK * 4 // 4096
    assert _mapped_apart(4 * BLOCK)  # glibc's default
    with large_blocks_kept():
        assert _fewest_faults() < pages // 20
    assert _mapped_apart(6 * BLOCK)  # the thresholds are back (larger than the block freed)


def test_nested_blocks_keep_the_setting_until_the_outer_one_ends() -> None:
    pages = BLOCK * 4 // 4096
    with large_blocks_kept():
        with large_blocks_kept():
            pass
        assert _fewest_faults() < pages // 20
