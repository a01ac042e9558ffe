"""Keep a training run's large buffers in the process heap instead of fresh memory maps.

glibc serves an allocation above its mmap threshold (at most 32 MiB) with a new mapping and
unmaps it on free. A training step allocates and frees several (N, I) arrays: the logits, their
softmax and its gradient, 112 MB each in float32 for 64 x 128 tokens of ml-1m-seq's 3,416
items. Each came back as new pages, and the kernel faulted and zeroed every one of them: a
bf16 logits product plus its float32 copy took 59 ms, against 11.5 ms from reused heap
memory; a step at hidden 128 went from 177 to 136 ms on two cores. Raising both thresholds
while a run trains keeps those blocks in the heap; afterwards the thresholds go back to the
ceiling glibc's own dynamic rule reaches and the heap's free top is returned to the system.

Allocations made by threads other than the main one come from glibc's per-thread arenas, whose
heaps hold at most 64 MiB: larger blocks there are mapped whatever the threshold.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_WHILE_TRAINING = 1 << 30
_MMAP_CEILING = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
_lock = threading.Lock()
_depth = 0


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


@contextmanager
def large_blocks_kept() -> Iterator[None]:
    """Within the block, freed large allocations stay in the heap for reuse (glibc only;
    elsewhere a no-op). Nested and concurrent runs share one setting until the last ends."""
    global _depth
    if _LIBC is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _WHILE_TRAINING)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _WHILE_TRAINING)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_CEILING)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_CEILING)
                _LIBC.malloc_trim(0)
