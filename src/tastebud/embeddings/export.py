"""Embeddings as a Parquet file: one row per id with its vector (a fixed-size list of float32,
which Arrow readers, pandas, polars and vector databases load as one array), the version it
came from and the space it is in."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from tastebud.recipes.base import FloatArray


def vectors_schema(dimensions: int) -> pa.Schema:
    """``id`` string, ``vector`` fixed_size_list<float32>[dimensions], ``version_id``,
    ``space_id`` strings."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("vector", pa.list_(pa.float32(), dimensions)),
            ("version_id", pa.string()),
            ("space_id", pa.string()),
        ]
    )


class ParquetVectors:
    """Writes chunks of ``(ids, vectors)`` to one Parquet file (written to a temporary name and
    renamed on success, so a failed export leaves no half file)."""

    def __init__(self, path: Path, *, version_id: str, space_id: str) -> None:
        self.path = path
        self.version_id = version_id
        self.space_id = space_id
        self.rows = 0
        self._partial = path.with_name(path.name + ".partial")
        self._writer: pq.ParquetWriter | None = None
        self._dimensions: int | None = None

    def __enter__(self) -> ParquetVectors:
        return self

    def write(self, ids: list[str], vectors: FloatArray) -> None:
        """Append rows; every chunk has the first chunk's dimensions."""
        dimensions = int(vectors.shape[1])
        if self._writer is None:
            self._dimensions = dimensions
            self._writer = pq.ParquetWriter(self._partial, vectors_schema(dimensions))
        flat = pa.array(vectors.astype("float32", copy=False).ravel(), pa.float32())
        table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dimensions),
                "version_id": pa.array([self.version_id] * len(ids), pa.string()),
                "space_id": pa.array([self.space_id] * len(ids), pa.string()),
            },
            schema=vectors_schema(dimensions),
        )
        self._writer.write_table(table)
        self.rows += len(ids)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._writer is None:  # nothing written: an empty file with a 0-wide vector
            self._writer = pq.ParquetWriter(self._partial, vectors_schema(0))
        self._writer.close()
        if kind is None:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)
