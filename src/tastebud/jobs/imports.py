"""Import jobs: stream a CSV or Parquet file, validate it column-wise, load it in one transaction.

No row disappears silently: every rejected row is written to the rejects file with its line and
reason, and past the error budget the transaction is rolled back, so nothing is stored.
"""

from __future__ import annotations

import csv
import gzip
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tastebud.errors import InvalidInput
from tastebud.schema import DatasetKind, DatasetSchema, infer_schema, validate_frame
from tastebud.store import ImportMode, Store

_log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dataclass(frozen=True, slots=True)
class ImportResult:
    dataset: DatasetKind
    mode: ImportMode
    accepted: int
    rejected: int
    stored: int
    rejects_file: str | None
    schema_inferred: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImportRejected(InvalidInput):
    """The error budget was exceeded; nothing was stored."""

    def __init__(self, message: str, result: ImportResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class ImportRequest:
    group: str
    dataset: DatasetKind
    path: Path
    mode: ImportMode = "incremental"
    max_error_rate: float = 0.1
    encoding: str = "utf-8"
    chunk_rows: int = 1_000_000


def run_import(
    store: Store,
    request: ImportRequest,
    *,
    rejects_path: Path,
    on_progress: ProgressFn | None = None,
) -> ImportResult:
    """Run one import job to the end.

    Raises:
        InvalidInput: unreadable file, unknown or missing columns, no rows.
        ImportRejected: more rows rejected than ``max_error_rate`` allows (nothing stored).
    """
    started = time.perf_counter()
    progress = on_progress or (lambda fraction, message: None)
    _check_source(request.path)
    source = _Source(request)
    chunks = source.chunks()
    first = next(chunks, None)
    if first is None or first.is_empty():
        raise InvalidInput(f"{request.path}: no data rows to import")
    schema = store.get_schema(request.group, request.dataset)
    inferred = schema is None
    if schema is None:
        schema = infer_schema(request.dataset, first)
    rejects = _RejectsFile(rejects_path)
    accepted = rejected = stored = parsed_rows = 0
    try:
        with store.bulk_writer(request.group, request.dataset, request.mode) as writer:
            # The next chunk is read and validated while this one is written.
            for chunk, good, bad in _prefetch(_validated(schema, _chain(first, chunks))):
                stored += writer.write(good)
                rejects.add(bad, chunk, chunk_start=parsed_rows)
                accepted += good.height
                rejected += bad.height
                parsed_rows += chunk.height
                progress(source.fraction_read(), f"{parsed_rows:,} rows")
            rejected += len(source.malformed)
            total = accepted + rejected
            rejects.finish(source, parsed_rows)
            over_budget = rejected > request.max_error_rate * total
            if not over_budget:  # big imports are loaded here, in one sorted pass
                progress(source.fraction_read(), f"{parsed_rows:,} rows read; loading")
                stored += writer.finish()
            result = ImportResult(
                dataset=request.dataset, mode=request.mode, accepted=accepted,
                rejected=rejected, stored=stored,
                rejects_file=str(rejects_path) if rejected else None,
                schema_inferred=inferred, seconds=round(time.perf_counter() - started, 3),
            )  # fmt: skip
            if over_budget:
                raise ImportRejected(
                    f"{request.path}: {rejected:,} of {total:,} rows rejected "
                    f"({rejected / total:.1%}), over the error budget of "
                    f"{request.max_error_rate:.1%}; nothing was stored. "
                    f"Rejected rows and reasons: {rejects_path}",
                    result,
                )
    finally:
        source.close()
    if inferred:
        store.put_schema(request.group, schema)
    _log.info("import done group=%s dataset=%s accepted=%d rejected=%d seconds=%.1f",
              request.group, request.dataset, accepted, rejected, result.seconds)  # fmt: skip
    progress(1.0, f"{accepted:,} rows imported")
    return result


def _check_source(path: Path) -> None:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if not path.name.lower().endswith(SUFFIXES):
        raise InvalidInput(f"{path}: unsupported file type; expected {', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path}: the file is empty")


def _chain(first: pl.DataFrame, rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    yield first
    yield from rest


def _validated(
    schema: DatasetSchema, chunks: Iterator[pl.DataFrame]
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    first_row = 0
    for chunk in chunks:
        good, bad = validate_frame(schema, chunk, first_row=first_row)
        yield chunk, good, bad
        first_row += chunk.height


_T = TypeVar("_T")


def _prefetch(items: Iterator[_T]) -> Iterator[_T]:
    """Run ``items`` one step ahead on a worker thread (polars and Arrow release the GIL)."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(("done", None))
        except BaseException as exc:  # re-raised in the consumer
            handoff.put(("error", exc))

    worker = threading.Thread(target=produce, name="tastebud-import-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


class _Source:
    """Chunks of a CSV or Parquet file as all-string frames, plus how far reading has got."""

    def __init__(self, request: ImportRequest) -> None:
        self.request = request
        self.path = request.path
        self.malformed: list[str] = []  # text of rows with the wrong number of fields
        self.columns: list[str] = []
        self._raw: IO[bytes] = open(self.path, "rb")  # noqa: SIM115  (closed in close())
        self._size = max(self.path.stat().st_size, 1)

    def close(self) -> None:
        self._raw.close()

    def fraction_read(self) -> float:
        try:
            return min(self._raw.tell() / self._size, 1.0)
        except ValueError:  # Arrow's gzip stream closes the file once it has read it all
            return 1.0

    def chunks(self) -> Iterator[pl.DataFrame]:
        if self.path.name.lower().endswith(".parquet"):
            return self._parquet_chunks()
        return self._csv_chunks()

    def _parquet_chunks(self) -> Iterator[pl.DataFrame]:
        try:
            parquet = pq.ParquetFile(self._raw)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{self.path}: not a readable Parquet file ({exc})") from None
        for batch in parquet.iter_batches(batch_size=self.request.chunk_rows):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame.with_columns(pl.all().cast(pl.String))

    def _csv_chunks(self) -> Iterator[pl.DataFrame]:
        stream = self._text_stream()
        header = self.columns = self._header()
        if len(set(header)) != len(header):
            raise InvalidInput(f"{self.path}: line 1: repeated column names in {header}")

        def on_invalid(row: Any) -> str:
            self.malformed.append(row.text)
            return "skip"

        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                block_size=16 << 20, encoding=self.request.encoding, column_names=header,
                skip_rows=1,
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=True, quoted_strings_can_be_null=False,
            ),
        )  # fmt: skip
        pending: list[pa.RecordBatch] = []
        rows, size = 0, self.request.chunk_rows
        try:
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                while rows >= size:  # a block holds many chunks' rows: cut them out
                    table = pa.Table.from_batches(pending)
                    yield _to_frame(table.slice(0, size).to_batches())
                    pending, rows = table.slice(size).to_batches(), rows - size
        except pa.ArrowInvalid as exc:
            if "UTF8" in str(exc):
                raise InvalidInput(self._encoding_message()) from None
            raise InvalidInput(f"{self.path}: cannot parse CSV: {exc}") from None
        if rows:
            yield _to_frame(pending)

    def _text_stream(self) -> Any:
        if self.path.name.lower().endswith(".gz"):
            return pa.CompressedInputStream(pa.PythonFile(self._raw, mode="r"), "gzip")
        return pa.PythonFile(self._raw, mode="r")

    def _open_lines(self) -> IO[str]:
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        return opener(self.path, "rt", encoding=self.request.encoding, newline="")

    def _header(self) -> list[str]:
        try:
            with self._open_lines() as lines:
                first = lines.readline()
        except UnicodeDecodeError:
            raise InvalidInput(self._encoding_message()) from None
        except (OSError, EOFError) as exc:
            raise InvalidInput(f"{self.path}: cannot read ({exc})") from None
        header = next(csv.reader([first.lstrip("\ufeff")]), [])
        header = [h.strip() for h in header]
        if not header or not any(header):
            raise InvalidInput(f"{self.path}: the file is empty (no header line)")
        return header

    def _encoding_message(self) -> str:
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        with opener(self.path, "rb") as raw:
            for number, line in enumerate(raw, start=1):
                try:
                    line.decode(self.request.encoding)
                except UnicodeDecodeError as exc:
                    return (
                        f"{self.path}: line {number} is not valid {self.request.encoding} "
                        f"(byte {line[exc.start]:#x} at column {exc.start + 1}); convert the "
                        "file or name its encoding (e.g. --encoding latin-1)"
                    )
        return f"{self.path}: not valid {self.request.encoding}"

    def line_numbers(self, parsed_rows: int) -> tuple[np.ndarray, list[int]]:
        """File lines where the parsed rows and the malformed ones start (one extra pass, rare).

        Blank lines and newlines inside quoted fields count, as in an editor.
        """
        if self.path.name.lower().endswith(".parquet"):
            return np.arange(parsed_rows, dtype=np.int64) + 2, []
        expected = len(self.columns)
        malformed_lines: list[int] = []
        parsed_lines = np.zeros(parsed_rows, dtype=np.int64)
        position = 0
        csv.field_size_limit(max(csv.field_size_limit(), self._size))
        with self._open_lines() as lines:
            reader = csv.reader(lines)
            next(reader, None)
            start = reader.line_num + 1
            for fields in reader:  # Arrow skips blank lines ([] here) too
                if fields and len(fields) != expected:
                    malformed_lines.append(start)
                elif fields and position < parsed_rows:
                    parsed_lines[position] = start
                    position += 1
                start = reader.line_num + 1
        return parsed_lines, malformed_lines


def _to_frame(batches: list[pa.RecordBatch]) -> pl.DataFrame:
    frame = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(frame, pl.DataFrame)
    return frame


class _RejectsFile:
    """Rejected rows as CSV: file ``line``, ``reason``, and the ``row`` as it was read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parts: list[pl.DataFrame] = []

    def add(self, rejected: pl.DataFrame, chunk: pl.DataFrame, *, chunk_start: int) -> None:
        if rejected.is_empty():
            return
        values = chunk.with_row_index("__i").select(
            (pl.col("__i").cast(pl.Int64) + chunk_start).alias("row"),
            pl.concat_str(pl.all().exclude("__i").fill_null(""), separator=",").alias("text"),
        )
        self._parts.append(rejected.join(values, on="row", how="left"))

    def finish(self, source: _Source, parsed_rows: int) -> None:
        if not self._parts and not source.malformed:
            return
        parsed_lines, malformed_lines = source.line_numbers(parsed_rows)
        typed = pl.concat(self._parts) if self._parts else _EMPTY_REJECTS
        typed = typed.select(
            pl.Series(parsed_lines)[typed["row"]].alias("line") if typed.height else
            pl.lit(None, pl.Int64).alias("line"),
            "reason", pl.col("text").alias("row"),
        )  # fmt: skip
        expected = len(source.columns)
        malformed = pl.DataFrame(
            {
                "line": malformed_lines
                if len(malformed_lines) == len(source.malformed)
                else [None] * len(source.malformed),
                "reason": [
                    f"expected {expected} fields, got {next(csv.reader([t]), []).__len__()}"
                    for t in source.malformed
                ],
                "row": source.malformed,
            },
            schema={"line": pl.Int64, "reason": pl.String, "row": pl.String},
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pl.concat([typed, malformed]).sort("line", nulls_last=True).write_csv(self.path)


_EMPTY_REJECTS = pl.DataFrame(schema={"row": pl.Int64, "reason": pl.String, "text": pl.String})
