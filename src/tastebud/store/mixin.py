"""The base of SQL mixins: the hooks a resource's SQL needs from :class:`SqlStore`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any


class SqlMixin:
    """A resource's SQL (solutions, filters …) written against ``SqlStore``'s helpers, which
    replace these stubs when the mixin is combined with it."""

    def _transaction(self, *, write: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _run(self, cur: Any, query: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _group_id(self, cur: Any, name: str) -> int:
        raise NotImplementedError

    def _sql(self, query: str) -> str:
        raise NotImplementedError
