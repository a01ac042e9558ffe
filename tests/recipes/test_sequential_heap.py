"""The training heap setting: a freed large block is reused without new page faults."""

from __future__ import annotations

import resource

import pytest
import torch

from tastebud.recipes.sequential import heap
from tastebud.recipes.sequential.heap import large_blocks_kept

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="glibc's mallopt is Linux-only")

BLOCK = 16 << 20  # float32 elements: 64 MiB, above glibc's largest mmap threshold


def _faults_of_a_reallocation() -> int:
    """Minor page faults while a 64 MiB block is allocated and written right after the same
    size was freed (fresh pages fault once each; reused heap pages do not)."""
    first = torch.ones(BLOCK)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = torch.ones(BLOCK)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


def test_large_blocks_are_reused_inside_and_mapped_again_after() -> None:
    pages = BLOCK * 4 // 4096
    assert _faults_of_a_reallocation() > pages // 2  # glibc's default: a fresh mapping
    with large_blocks_kept():
        assert _faults_of_a_reallocation() < pages // 20
    assert _faults_of_a_reallocation() > pages // 2  # the thresholds are back afterwards


def test_nested_blocks_keep_the_setting_until_the_outer_one_ends() -> None:
    pages = BLOCK * 4 // 4096
    with large_blocks_kept():
        with large_blocks_kept():
            pass
        assert _faults_of_a_reallocation() < pages // 20
