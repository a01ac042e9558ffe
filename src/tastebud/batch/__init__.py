"""Batch jobs: recommendations and segments for many users or items at once (JSON Lines)."""

from tastebud.batch.formats import JobKind, LineRequest, parse_line
from tastebud.batch.service import BatchFailed, BatchResult, BatchService, BatchSpec

__all__ = [
    "BatchFailed",
    "BatchResult",
    "BatchService",
    "BatchSpec",
    "JobKind",
    "LineRequest",
    "parse_line",
]
