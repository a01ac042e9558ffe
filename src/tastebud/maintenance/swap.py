"""A restore's swap, journaled: what a ``kill -9`` interrupts, the next process finishes.

The swap is a list of renames (each target and its SQLite companions moved aside, then each
staged path moved into place) and, on PostgreSQL, one transaction renaming the databases.
Renames are atomic one by one, not together, so the plan is written to
``home/.tastebud-restore-journal.json`` (fsynced) before the first one and deleted after the
last. A process that finds the journal — the next ``Engine`` to open the installation, or a
``tastebud restore`` — rolls the swap forward: every check had passed before the journal was
written, so completing the restore the operator asked for is the consistent end. An error
raised in the process itself (not a kill) undoes what it did instead, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tastebud.errors import TastebudError
from tastebud.store.copies import database_name, pg_database_exists, pg_swap

_log = logging.getLogger(__name__)
JOURNAL = ".tastebud-restore-journal.json"
Move = tuple[Path, Path]  # (from, to)


@dataclass(frozen=True)
class DatabaseSwap:
    """PostgreSQL: database ``staged`` gets ``url``'s name; the one it replaces, ``keep_as``."""

    url: str
    staged: str
    keep_as: str


def plan_moves(files: list[tuple[Path, Path]], aside_name: str) -> list[Move]:
    """Each existing target (with a SQLite database's WAL and shared memory) moved into a
    folder ``aside_name`` beside it, then each staged path that exists moved into place."""
    moves: list[Move] = []
    for _, target in files:
        for old in (target, *_companions(target)):
            if old.exists():
                moves.append((old, target.parent / aside_name / old.name))
    moves += [(staged, target) for staged, target in files if staged.exists()]
    return moves


@dataclass(frozen=True)
class Plan:
    """What a journal holds: the moves in order, the database renames, the staging folder
    (deleted once the swap is finished)."""

    moves: list[Move]
    database: DatabaseSwap | None
    staging: Path

    def to_json(self) -> str:
        return json.dumps({
            "moves": [[str(s), str(d)] for s, d in self.moves],
            "database": None if self.database is None else vars(self.database),
            "staging": str(self.staging),
        })  # fmt: skip

    @staticmethod
    def from_json(text: str) -> Plan:
        body = json.loads(text)
        database = body["database"]
        return Plan([(Path(s), Path(d)) for s, d in body["moves"]],
                    None if database is None else DatabaseSwap(**database),
                    Path(body["staging"]))  # fmt: skip


def swap(home: Path, plan: Plan) -> bool:
    """Make ``plan``'s moves then its database renames, journaled; all undone on an error.
    Returns whether a database was replaced (PostgreSQL)."""
    journal = home / JOURNAL
    _write(journal, plan.to_json())
    done: list[Move] = []
    try:
        for source, destination in plan.moves:
            _move(source, destination)
            done.append((source, destination))
        replaced = _swap_databases(plan.database)
    except BaseException:
        _undo(done)
        journal.unlink(missing_ok=True)
        raise
    journal.unlink()
    return replaced


def finish_interrupted(home: Path) -> bool:
    """Roll forward a swap that a killed restore left half-done under ``home``; whether there
    was one. Cheap when there is none (one ``stat``); safe when several processes start at
    once (the first one finishes it, under a lock on the journal)."""
    journal = home / JOURNAL
    if not journal.exists():
        return False
    with _locked(journal) as plan:
        if plan is None:  # another process finished it meanwhile
            return False
        for source, destination in plan.moves:
            if source.exists() and not destination.exists():
                _move(source, destination)
        database = plan.database
        if database is not None and pg_database_exists(
            database.url, database_name(database.staged)
        ):
            _swap_databases(database)
        shutil.rmtree(plan.staging, ignore_errors=True)
        journal.unlink()
    _log.warning("finished a restore that was interrupted (%s); what it replaced is kept "
                 "aside as the restore would have", journal)  # fmt: skip
    return True


def _swap_databases(database: DatabaseSwap | None) -> bool:
    return pg_swap(database.url, database.staged, keep_as=database.keep_as) if database else False


def _write(journal: Path, text: str) -> None:
    """``text`` in ``journal``, whole and on disk before this returns."""
    partial = journal.with_name(journal.name + ".partial")
    with partial.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(journal)
    _fsync_folder(journal.parent)


@contextlib.contextmanager
def _locked(journal: Path) -> Iterator[Plan | None]:
    """The journal's plan, read under an exclusive lock on it; None if it went meanwhile."""
    try:
        handle = journal.open("r")
    except FileNotFoundError:
        yield None
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield Plan.from_json(handle.read()) if journal.exists() else None


def _undo(moves: list[Move]) -> None:
    for source, destination in reversed(moves):
        with contextlib.suppress(OSError):
            shutil.move(destination, source)


def _companions(target: Path) -> list[Path]:
    return [target.with_name(f"{target.name}-wal"), target.with_name(f"{target.name}-shm")]


def _move(source: Path, destination: Path) -> None:
    if destination.exists():
        raise TastebudError(f"cannot move {source} to {destination}: it exists")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A rename; a copy when the database lives on another disk than the home.
    shutil.move(source, destination)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
