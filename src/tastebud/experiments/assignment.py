"""Which arm a user lands in: a deterministic hash of the experiment and user ids.

    bucket = int.from_bytes(sha256(f"{experiment}:{user_id}".encode()).digest()[:8], "big") % 10_000

Arms own consecutive ranges of the 10,000 buckets in their declared order, each
``round(weight * 100)`` wide: with ``control:50, treatment:50`` buckets 0-4999 are control.
Any system can compute the same assignment (docs/experiments.md has the snippet); naming the
experiment in the hash makes assignments of different experiments independent.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket(experiment: str, user_id: str) -> int:
    """The user's bucket in ``experiment``, 0 to 9,999."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_index(experiment: str, user_id: str, bounds: Sequence[int]) -> int:
    """The index of the user's arm, given each arm's exclusive upper bucket bound."""
    return bisect.bisect_right(bounds, bucket(experiment, user_id))
