"""Stores of their own for backup, restore and upgrade tests: a SQLite file, or a PostgreSQL
database of its own beside the shared test database (a restore renames whole databases)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.settings import Settings
from tastebud.store.copies import with_database

GROUP = "shop"
USERS = [f"u{n:02d}" for n in range(30)]
ITEMS = [f"i{n:02d}" for n in range(20)]

MakeSettings = Callable[[str], Settings]


@pytest.fixture
def make_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest
                  ) -> Iterator[MakeSettings]:  # fmt: skip
    """``make("a")``: settings of a new, empty installation named ``a`` (its own home and, on
    PostgreSQL, its own database); every database made is dropped afterwards, with those a
    restore made beside it."""
    made: list[str] = []
    pg_url = str(request.getfixturevalue("pg_url")) if backend == "postgres" else ""

    def make(name: str) -> Settings:
        home = tmp_path / name / "home"
        if backend == "sqlite":
            return Settings(home=home, default_group=GROUP)
        database = f"tb_backup_{name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(with_database(pg_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        made.append(database)
        return Settings(home=home, default_group=GROUP,
                        database_url=with_database(pg_url, database))  # fmt: skip

    yield make
    if made:
        with psycopg.connect(with_database(pg_url, "postgres"), autocommit=True) as conn:
            for database in made:
                rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                    (f"{database}%",)).fetchall()  # fmt: skip
                for (name,) in rows:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def populate(engine: Engine, folder: Path) -> str:
    """``init``, then a group with schemas, items, interactions (clusters: user n watches the
    items with index = n mod 4), a filter, two trained solutions, a campaign and a token;
    returns the token's secret."""
    engine.init()  # the group, and the first admin token in home/admin.token
    engine.put_schema(GROUP, "items", {"GENRES": "categorical"})
    folder.mkdir(parents=True, exist_ok=True)
    items = folder / "items.csv"
    items.write_text("ITEM_ID,GENRES\n" + "".join(f"{item},g{m % 4}\n"
                                                  for m, item in enumerate(ITEMS)))  # fmt: skip
    rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"]
    for n, user in enumerate(USERS):
        cluster = [item for m, item in enumerate(ITEMS) if m % 4 == n % 4]
        rows += [f"{user},{item},{1_700_000_000 + n * 100 + s},watch"
                 for s, item in enumerate(cluster[: 2 + n % 3])]  # fmt: skip
    interactions = folder / "interactions.csv"
    interactions.write_text("\n".join(rows) + "\n")
    engine.import_file(GROUP, "items", items)
    engine.import_file(GROUP, "interactions", interactions)
    engine.create_solution(GROUP, "popular", {"recipe": "popularity-count"})
    engine.create_solution(GROUP, "similar", {"recipe": "similar-items",
                                              "params": {"mode": "cosine"}})  # fmt: skip
    engine.train(GROUP, "popular")
    engine.train(GROUP, "similar")
    engine.create_filter(GROUP, "unwatched",
                         'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')  # fmt: skip
    engine.create_campaign(GROUP, "home", "popular")
    return engine.create_token("backup-admin", scope="admin")


def answers(engine: Engine) -> dict[str, list[str]]:
    """What the populated store answers: per user, per item, with the filter."""
    recommender = engine.recommender
    found = {}
    for user in ("u01", "u02", "u07"):
        answer = recommender.recommend(GROUP, {"solution": "popular"}, user_id=user, k=5,
                                       filter_name="unwatched")  # fmt: skip
        found[f"popular/{user}"] = [r.id for r in answer.results]
    for item in ("i01", "i06"):
        answer = recommender.similar_items(GROUP, {"solution": "similar"}, item_id=item, k=3)
        found[f"similar/{item}"] = [r.id for r in answer.results]
    return found


def put_event(engine: Engine, user: str, item: str, event_id: str) -> None:
    body = {"userId": user, "eventList": [{"eventId": event_id, "itemId": item,
                                           "eventType": "watch"}]}  # fmt: skip
    engine.put_events(GROUP, PutEventsRequest.model_validate(body))
