"""Background jobs: imports now; batch inference and training later."""

from tastebud.jobs.imports import ImportRejected, ImportRequest, ImportResult, run_import
from tastebud.jobs.runner import JobRunner

__all__ = ["ImportRejected", "ImportRequest", "ImportResult", "JobRunner", "run_import"]
