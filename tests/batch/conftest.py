"""Batch tests use the serving tests' planted two-cluster group."""

from tests.serving.conftest import loaded

__all__ = ["loaded"]
