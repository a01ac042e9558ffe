"""Shared fixtures: a store on every backend, a private dataset group in it, an engine over it.

The ``store`` fixture runs each test on SQLite (a fresh file) and on PostgreSQL (a shared
database; each test gets its own uniquely named group, deleted afterwards). PostgreSQL is part of
the contract: when it is unreachable the PostgreSQL tests fail, they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tastebud.engine import Engine
from tastebud.settings import Settings
from tastebud.store import Store, open_store

PG_URL = os.environ.get("TASTEBUD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")


def unique_name(prefix: str = "t") -> str:
    """A dataset group (or token) name no other test or run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL, checked once; unreachable means failure, never a skip."""
    problem = None
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        problem = str(exc).strip()
    if problem is not None:
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_URL} ({problem}). The store contract runs on "
            "SQLite AND PostgreSQL; start PostgreSQL or point TASTEBUD_TEST_PG_URL at one.",
            pytrace=False,
        )
    return PG_URL


@pytest.fixture(scope="session")
def pg_cleanup_store(pg_url: str) -> Iterator[Store]:
    """A store of its own for tearing down tests' groups (tests may close theirs). At the end
    of the session the shared database is vacuumed: deleted test groups leave dead rows, and
    where autovacuum is off (this machine) they piled up run after run (30M rows)."""
    store = open_store(pg_url)
    yield store
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) interactions, id_map, items, users")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'tastebud.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def group_name() -> str:
    return unique_name()


@pytest.fixture
def store(
    backend: str, store_url: str, group_name: str, request: pytest.FixtureRequest
) -> Iterator[Store]:
    """An open, migrated store holding one empty dataset group named ``group``.

    Groups and tokens a test creates should start with the ``group`` name: they are removed
    afterwards too.
    """
    cleanup: Store | None = None
    if backend == "postgres":
        cleanup = request.getfixturevalue("pg_cleanup_store")
    store = open_store(store_url)
    store.create_group(group_name)
    yield store
    store.close()
    if cleanup is not None:
        for existing in cleanup.list_groups():
            if existing.name.startswith(group_name):
                cleanup.delete_group(existing.name)
        for token in cleanup.list_tokens():
            if token.name.startswith(group_name):
                cleanup.revoke_token(token.name)


@pytest.fixture
def group(store: Store, group_name: str) -> str:
    """The name of the test's own dataset group (created in ``store``)."""
    return group_name


@pytest.fixture
def engine(store: Store, store_url: str, group: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine over the same store (its settings name it, for workers in other processes);
    its default group is the test's group."""
    settings = Settings(home=tmp_path / "home", default_group=group, database_url=store_url)
    engine = Engine(settings, store=store)
    yield engine
    engine.close()
