"""Answer one shard of a batch job into its part file (in this process or on a remote worker).

A :class:`ShardJob` holds everything a worker needs and pickles cheaply, so the same function
runs in the job's own process, in a process pool, or as a Ray task on another machine (which
then opens the store and reads the artifacts itself: shared storage, as in every scale-out).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tastebud.batch.formats import JobKind, ParsedLine, output_line, parse_line
from tastebud.batch.scoring import Answered, BatchOptions, ChunkScorer, chunk_rows
from tastebud.batch.shards import Parts, Shard, read_shard
from tastebud.serving.precomputed import PrecomputedTarget, PrecomputedWriter
from tastebud.serving.service import Recommender
from tastebud.settings import Settings

Sink = Callable[[Sequence[tuple[str, Mapping[str, Any]]]], object]  # (id, output) pairs
MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class ShardJob:
    group: str
    kind: JobKind
    version_id: str
    input: Path
    parts: Path
    options: BatchOptions
    target: PrecomputedTarget | None = None  # answers also go to this key-value store
    settings: dict[str, Any] = field(default_factory=dict)  # for workers in other processes


@dataclass(frozen=True, slots=True)
class ShardResult:
    shard: int
    answered: int  # lines answered in this run
    resumed: int  # lines a previous run had already written
    errors: int  # error lines, previous run included
    samples: tuple[str, ...] = ()  # "line 12: unknown field 'usr'", a few


def answer_shard(
    recommender: Recommender,
    job: ShardJob,
    shard: Shard,
    *,
    on_lines: Callable[[int], None] | None = None,
) -> ShardResult:
    """Answer the shard's lines not yet in its part file, chunk by chunk (and write them to
    the job's key-value target, when it has one)."""
    if job.target is None:
        return _answer_shard(recommender, job, shard, sink=None, on_lines=on_lines)
    with PrecomputedWriter(job.target) as writer:
        created = int(time.time())

        def sink(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
            provenance = {"solutionVersionId": job.version_id, "createdAt": created}
            writer.write([(key, {**output, **provenance}) for key, output in entries])

        return _answer_shard(recommender, job, shard, sink=sink, on_lines=on_lines)


def _answer_shard(
    recommender: Recommender,
    job: ShardJob,
    shard: Shard,
    *,
    sink: Sink | None,
    on_lines: Callable[[int], None] | None,
) -> ShardResult:
    parts = Parts(job.parts)
    resumed = parts.done_lines(shard)
    if on_lines is not None and resumed:
        on_lines(resumed)  # progress counts what an earlier run wrote
    errors, samples = _earlier_errors(parts.part(shard), shard.first_line)
    scorer = ChunkScorer(recommender, job.group, job.version_id, job.options)
    rows = chunk_rows(scorer.version().model.n_items)
    number = shard.first_line + resumed
    lines = read_shard(job.input, shard, skip=resumed)
    with open(parts.part(shard), "ab") as out:
        while chunk := list(itertools.islice(lines, rows)):
            parsed = [parse_line(line, job.kind) for line in chunk]
            answers = _answer(scorer, job.kind, parsed)
            pairs = zip(parsed, answers, strict=True)
            out.write(b"".join(output_line(line.echo, *answer) for line, answer in pairs))
            out.flush()
            os.fsync(out.fileno())  # a line counted as done survives a crash
            for offset, (_, error) in enumerate(answers):
                if error is not None:
                    errors += 1
                    if len(samples) < MAX_ERROR_SAMPLES:
                        samples.append(f"line {number + offset + 1}: {error}")
            if sink is not None:
                sink(_keyed(parsed, answers))
            number += len(chunk)
            if on_lines is not None:
                on_lines(len(chunk))
    return ShardResult(shard.index, number - shard.first_line - resumed, resumed, errors,
                       tuple(samples))  # fmt: skip


def answer_shard_remote(job: ShardJob, shard: Shard) -> ShardResult:
    """:func:`answer_shard` in a fresh process: its own store and loaded version."""
    from tastebud.store import open_store

    settings = Settings(**job.settings)
    store = open_store(settings.store_url, limits=settings.store)
    try:
        return answer_shard(Recommender(store, settings), job, shard)
    finally:
        store.close()


def _answer(scorer: ChunkScorer, kind: JobKind, parsed: list[ParsedLine]) -> list[Answered]:
    valid = [p.request for p in parsed if p.request is not None]
    answered = iter(scorer.recommend(valid) if kind == "recommend" else scorer.segment(valid))
    return [(None, p.error) if p.request is None else next(answered) for p in parsed]


def _keyed(
    parsed: list[ParsedLine], answers: list[Answered]
) -> list[tuple[str, Mapping[str, Any]]]:
    """Answered lines by the id a key-value store files them under (user, else item); ranked
    lists answer a (user, list) pair, not a user, so they are not filed."""
    keyed: list[tuple[str, Mapping[str, Any]]] = []
    for line, (output, _) in zip(parsed, answers, strict=True):
        request = line.request
        if output is not None and request is not None and request.item_list is None:
            key = request.user_id or request.item_id
            if key is not None:
                keyed.append((key, output))
    return keyed


def _earlier_errors(part: Path, first_line: int) -> tuple[int, list[str]]:
    """Error lines already in a part file (a resumed shard's budget counts them)."""
    if not part.exists():
        return 0, []
    errors, samples = 0, list[str]()
    with open(part, "rb") as handle:
        for number, line in enumerate(handle, start=first_line + 1):
            error = orjson.loads(line).get("error")
            if error is not None:
                errors += 1
                if len(samples) < MAX_ERROR_SAMPLES:
                    samples.append(f"line {number}: {error}")
    return errors, samples
