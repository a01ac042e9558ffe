"""Metadata as columns over dense rows: what compiled filters read.

A :class:`Catalog` holds one version's items (or users): rows ``0..n-1`` are the version's own
indexes, so a mask over them lines up with the model's scores; then come the ids the store knows
but the version does not (added since training, so that ranking a new item can still be
filtered); the last row stands for an id known nowhere (no metadata at all). Columns are built
on first use and kept: a string column is an inverted index ``value -> rows``, a numeric column a
float array with NaN where the value is missing. An :class:`EventTable` holds interactions in the
same shapes (``rows`` point into a catalog), so conditions read both alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from tastebud.ids import Vocabulary
from tastebud.store.base import Event

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
_NO_ROWS = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True, slots=True)
class StringColumn:
    """Rows per value (an inverted index) and which rows hold any value."""

    index: Mapping[str, IntArray]
    present: BoolArray

    def any_of(self, values: Sequence[str]) -> BoolArray:
        """Rows holding at least one of ``values``."""
        mask = np.zeros(len(self.present), dtype=np.bool_)
        for value in values:
            rows = self.index.get(value)
            if rows is not None:
                mask[rows] = True
        return mask


class Catalog:
    """One version's items or users as filterable columns (see the module docstring)."""

    def __init__(self, frame: pl.DataFrame, vocabulary: Vocabulary, *, id_column: str) -> None:
        self.known = len(vocabulary)
        self._vocabulary = vocabulary
        self._id_column = id_column
        store_ids = frame[id_column].to_list() if frame.height else []
        self._extra = {i: self.known + k for k, i in enumerate(
            dict.fromkeys(i for i in store_ids if i not in vocabulary))}  # fmt: skip
        self.size = self.known + len(self._extra) + 1  # + the row of ids known nowhere
        rows = np.fromiter((self.row(i) for i in store_ids), dtype=np.int32, count=len(store_ids))
        self._frame = frame.with_columns(pl.Series("__row", rows, dtype=pl.Int32))
        self._strings: dict[tuple[str, bool], StringColumn] = {}
        self._numbers: dict[str, FloatArray] = {}
        self._lock = threading.Lock()

    @property
    def empty_row(self) -> int:
        """The row of an id known nowhere: no metadata, never in any index."""
        return self.size - 1

    def row(self, external_id: str) -> int:
        """The id's row; :attr:`empty_row` when neither the version nor the store knows it."""
        index = self._vocabulary.get(external_id)
        return index if index >= 0 else self._extra.get(external_id, self.empty_row)

    def rows(self, external_ids: Sequence[str], *, indexes: IntArray | None = None) -> IntArray:
        """Rows of ``external_ids``; -1 where an id is known nowhere. ``indexes``: the version's
        indexes of the same ids (-1: unknown), when the caller has them already."""
        rows = self._vocabulary.indices(external_ids) if indexes is None else indexes.copy()
        if self._extra:
            for position in np.flatnonzero(rows < 0):
                rows[position] = self._extra.get(external_ids[int(position)], -1)
        return rows

    def strings(self, name: str, *, split: bool) -> StringColumn:
        """The inverted index of a string field (``split``: categorical, ``|``-joined values)."""
        key = (name, split)
        column = self._strings.get(key)
        if column is None:
            column = self._ids() if name == self._id_column else self._build_strings(name, split)
            with self._lock:
                self._strings[key] = column
        return column

    def numbers(self, name: str) -> FloatArray:
        """A numerical or timestamp field as floats, NaN where missing."""
        column = self._numbers.get(name)
        if column is None:
            column = np.full(self.size, np.nan)
            if name in self._frame.columns:
                values = self._frame[name].cast(pl.Float64, strict=False).fill_null(np.nan)
                column[self._frame["__row"].to_numpy()] = values.to_numpy()
            column.flags.writeable = False
            with self._lock:
                self._numbers[name] = column
        return column

    def value(self, row: int, name: str) -> Any:
        """One row's raw value of a field (None when missing): the ``CurrentItem`` lookup."""
        if name == self._id_column:
            if row < self.known:
                return self._vocabulary.ids([row])[0]
            extra = list(self._extra)
            return extra[row - self.known] if row - self.known < len(extra) else None
        if name not in self._frame.columns:
            return None
        hits = self._frame.filter(pl.col("__row") == row)
        return hits[name][0] if hits.height else None

    def _build_strings(self, name: str, split: bool) -> StringColumn:
        present = np.zeros(self.size, dtype=np.bool_)
        if name not in self._frame.columns:
            return StringColumn({}, present)
        values = self._frame.select(pl.col("__row"), pl.col(name).cast(pl.String).alias("v"))
        if split:
            values = values.with_columns(pl.col("v").str.split("|")).explode("v")
        values = values.filter(pl.col("v").is_not_null() & (pl.col("v") != ""))
        present[values["__row"].to_numpy()] = True
        grouped = values.group_by("v").agg(pl.col("__row"))
        index = {
            str(v): np.asarray(rows, dtype=np.int32)
            for v, rows in zip(grouped["v"].to_list(), grouped["__row"].to_list(), strict=True)
        }
        return StringColumn(index, present)

    def _ids(self) -> StringColumn:
        present = np.ones(self.size, dtype=np.bool_)
        present[self.empty_row] = False
        return StringColumn(_IdIndex(self), present)


class _IdIndex(Mapping[str, IntArray]):
    """``id -> its row`` without building a dict of arrays (filters on ITEM_ID/USER_ID)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __getitem__(self, key: str) -> IntArray:
        row = self._catalog.row(key)
        if row == self._catalog.empty_row:
            raise KeyError(key)
        return np.array([row], dtype=np.int32)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("an id index is looked up, not listed")

    def __len__(self) -> int:
        return self._catalog.size - 1


class EventTable:
    """Interactions as columns: ``rows`` (into a catalog; -1 for ids it lacks), ``EVENT_TYPE``
    (matched case-insensitively), ``EVENT_VALUE`` and ``TIMESTAMP``. A column is read on first
    use, so a filter on event types never touches values or timestamps."""

    def __init__(self, rows: IntArray, read: Callable[[str], Any]) -> None:
        self.rows = rows
        self._read = read
        self._columns: dict[str, Any] = {}

    @property
    def size(self) -> int:
        return len(self.rows)

    @classmethod
    def from_events(cls, events: Sequence[Event], rows: IntArray) -> EventTable:
        """A user's recent events (the request path: at most a few hundred)."""

        def read(name: str) -> Any:
            if name == "EVENT_TYPE":
                return [e.event_type for e in events]
            if name == "EVENT_VALUE":
                values = (np.nan if e.event_value is None else e.event_value for e in events)
                return np.fromiter(values, np.float64, count=len(events))
            return np.fromiter((e.timestamp for e in events), np.float64, count=len(events))

        return cls(rows, read)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, rows: IntArray) -> EventTable:
        """A store frame (``read_interactions``: event_type, event_value, timestamp)."""

        def read(name: str) -> Any:
            if name == "EVENT_TYPE":
                return frame["event_type"].to_list()
            column = frame["event_value" if name == "EVENT_VALUE" else "timestamp"]
            return column.cast(pl.Float64).fill_null(np.nan).to_numpy()

        return cls(rows, read)

    def strings(self, name: str, *, split: bool) -> EventTypes:
        """``EVENT_TYPE``, compared lower-cased."""
        if name != "EVENT_TYPE":
            raise KeyError(name)
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = EventTypes(self._read(name))
        return column

    def numbers(self, name: str) -> FloatArray:
        if name not in ("EVENT_VALUE", "TIMESTAMP"):
            raise KeyError(name)
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = self._read(name)
        return column  # type: ignore[no-any-return]

    def rows_where(self, mask: BoolArray) -> IntArray:
        """Rows of the events in ``mask`` that the catalog knows."""
        rows = self.rows[mask]
        return rows[rows >= 0] if len(rows) else _NO_ROWS


class EventTypes:
    """Event types answering like a :class:`StringColumn`, case-insensitively (``any_of``
    takes lower-cased values)."""

    def __init__(self, types: Sequence[str | None]) -> None:
        self._types = types

    @property
    def present(self) -> BoolArray:
        return np.fromiter((t is not None for t in self._types), np.bool_, count=len(self._types))

    def any_of(self, values: Sequence[str]) -> BoolArray:
        wanted = set(values)
        if len(self._types) > 5_000:  # a whole group's interactions (segments)
            lowered = pl.Series(self._types, dtype=pl.String).str.to_lowercase()
            return lowered.is_in(list(wanted)).fill_null(False).to_numpy()
        return np.fromiter((t is not None and t.lower() in wanted for t in self._types),
                           np.bool_, count=len(self._types))  # fmt: skip
