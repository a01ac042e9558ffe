"""A batch job's files: the input cut into shards, one part file per shard, resumable.

A job writes ``OUTPUT.parts/`` next to its output: ``job.json`` (what the job is: input file,
version, options, shard boundaries) and ``part-NNNNN.jsonl``, one output line per input line.
Lines are appended and flushed per chunk, so a job killed half-way leaves whole lines (and at
most one torn line, cut off when it resumes). Run again with the same output, it skips the
lines already written; once every shard is complete the parts are joined into ``OUTPUT``
(written to a temporary name and renamed: readers never see half a file).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tastebud.errors import InvalidInput

MANIFEST = "job.json"


@dataclass(frozen=True, slots=True)
class Shard:
    """Input lines ``first_line .. first_line + lines - 1`` (0-based), from byte ``offset``."""

    index: int
    first_line: int
    lines: int
    offset: int


def plan_shards(path: Path, shard_lines: int) -> list[Shard]:
    """Cut ``path`` into shards of ``shard_lines`` lines in one streaming pass (blank lines
    count: output line *n* always answers input line *n*)."""
    shards: list[Shard] = []
    offset = first = count = 0
    with open(path, "rb") as handle:
        for _ in handle:
            count += 1
            if count - first == shard_lines:
                shards.append(Shard(len(shards), first, shard_lines, offset))
                first = count
                offset = handle.tell()
    if count > first:
        shards.append(Shard(len(shards), first, count - first, offset))
    return shards


def read_shard(path: Path, shard: Shard, *, skip: int = 0) -> Iterator[bytes]:
    """The shard's input lines after the first ``skip``."""
    with open(path, "rb") as handle:
        handle.seek(shard.offset)
        for number in range(shard.lines):
            line = handle.readline()
            if number >= skip:
                yield line


class Parts:
    """The ``.parts`` folder of one job's output."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_output(cls, output: Path) -> Parts:
        return cls(output.with_name(output.name + ".parts"))

    def part(self, shard: Shard) -> Path:
        return self.folder / f"part-{shard.index:05d}.jsonl"

    def open(self, job: Mapping[str, Any], plan: list[Shard]) -> list[Shard]:
        """Start the folder, or check that the run it holds is this job; returns the shards
        (those of the earlier run when resuming, so the boundaries stay put).

        Raises:
            InvalidInput: the folder holds a different job's run.
        """
        manifest = self.folder / MANIFEST
        if manifest.exists():
            earlier = json.loads(manifest.read_text(encoding="utf-8"))
            if earlier.get("job") != dict(job):
                changed = sorted(k for k in set(job) | set(earlier.get("job", {}))
                                 if job.get(k) != earlier.get("job", {}).get(k))  # fmt: skip
                raise InvalidInput(
                    f"{self.folder} holds an unfinished run of another job (differs in: "
                    f"{', '.join(changed)}); delete that folder or choose another output"
                )
            return [Shard(**shard) for shard in earlier["shards"]]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write({"job": dict(job), "shards": [asdict(shard) for shard in plan]})
        return plan

    def version(self) -> str | None:
        """The solution version that answered the run in this folder, if one started."""
        manifest = self.folder / MANIFEST
        if not manifest.exists():
            return None
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        return None if found is None else str(found)

    def set_version(self, version_id: str) -> None:
        manifest = self.folder / MANIFEST
        body = json.loads(manifest.read_text(encoding="utf-8"))
        if body.get("version") != version_id:
            self._write({**body, "version": version_id})

    def _write(self, body: Mapping[str, Any]) -> None:
        manifest = self.folder / MANIFEST
        partial = manifest.with_suffix(".partial")
        partial.write_text(json.dumps(body, indent=1), encoding="utf-8")
        partial.replace(manifest)

    def done_lines(self, shard: Shard) -> int:
        """Whole lines already written for ``shard``; a torn last line is cut off."""
        path = self.part(shard)
        if not path.exists():
            return 0
        data = path.read_bytes()
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(whole)
        return data.count(b"\n", 0, whole)

    def join(self, shards: list[Shard], output: Path) -> None:
        """Concatenate the parts into ``output`` atomically, then remove the folder."""
        partial = output.with_name(output.name + ".partial")
        with open(partial, "wb") as out:
            for shard in shards:
                with open(self.part(shard), "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(output)
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
