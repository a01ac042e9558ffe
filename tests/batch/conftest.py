"""Batch tests use the serving tests' planted two-cluster group, and tiny torch models on one
thread as the recipe tests do."""

from tests.recipes.conftest import one_torch_thread
from tests.serving.conftest import loaded

__all__ = ["loaded", "one_torch_thread"]
