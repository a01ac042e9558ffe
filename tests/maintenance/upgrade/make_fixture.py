"""Make the upgrade fixture: a small store written by the previous release (schema v6).

The previous release is main at 5512b23 (issue 16 resolved, before issue 15 added schema
versions 7 and 8). Run this script with THAT release's code, never today's:

    git archive 5512b23 src | tar -x -C /tmp/prev
    PYTHONPATH=/tmp/prev/src .venv/bin/python tests/maintenance/upgrade/make_fixture.py \
        --pg-url postgresql://postgres@127.0.0.1:5432/postgres

It writes ``schema-v6/sqlite/`` (``tastebud.db`` and ``artifacts/``), ``schema-v6/postgres/``
(``dump.sql``, a plain ``pg_dump``, and ``artifacts/``) and ``schema-v6/expected.json``: the
token, the groups' counts and the answers the old release gave, which the upgraded store must
give too (tests/maintenance/test_upgrade.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from tastebud import __version__
from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.serving.campaigns import CampaignRequest
from tastebud.settings import Settings

HERE = Path(__file__).parent / "schema-v6"
GROUP = "shop"
TOKEN_NAME = "fixture-admin"
USERS = [f"u{n:02d}" for n in range(24)]
ITEMS = [f"i{n:02d}" for n in range(16)]
GENRES = ["Comedy", "Drama", "Horror", "Action"]


def _data(folder: Path) -> tuple[Path, Path]:
    """Interactions with planted clusters: user n watches the items of genre n % 4, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"]
    for n, user in enumerate(USERS):
        cluster = [item for m, item in enumerate(ITEMS) if m % 4 == n % 4]
        for step, item in enumerate(cluster[: 3 + n % 2]):  # odd users saw one item more
            rows.append(f"{user},{item},{1_700_000_000 + n * 100 + step},watch")
    interactions = folder / "interactions.csv"
    interactions.write_text("\n".join(rows) + "\n")
    items = folder / "items.csv"
    lines = ["ITEM_ID,GENRES"] + [f"{item},{GENRES[m % 4]}" for m, item in enumerate(ITEMS)]
    items.write_text("\n".join(lines) + "\n")
    return interactions, items


def _fill(engine: Engine, scratch: Path) -> dict[str, Any]:
    """Every kind of record the old release stores, and the answers it gives."""
    engine.ensure_group(GROUP)
    token = engine.create_token(TOKEN_NAME, scope="admin")
    engine.put_schema(GROUP, "items", {"GENRES": "categorical"})
    interactions, items = _data(scratch)
    engine.import_file(GROUP, "items", items)
    engine.import_file(GROUP, "interactions", interactions)
    live = {"userId": "u00", "eventList": [
        {"eventId": "live-1", "itemId": "i12", "eventType": "watch", "sentAt": 1_700_100_000},
    ]}  # fmt: skip
    engine.put_events(GROUP, PutEventsRequest.model_validate(live))
    engine.create_solution(GROUP, "popular", {"recipe": "popularity-count"})
    engine.create_solution(GROUP, "similar", {"recipe": "similar-items",
                                              "params": {"mode": "cosine"}})  # fmt: skip
    engine.train(GROUP, "popular")
    engine.train(GROUP, "similar")
    engine.create_filter(GROUP, "unwatched",
                         'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')  # fmt: skip
    engine.create_campaign(GROUP, "home", "popular")
    answers = {
        "popular/u01": _ids(engine.recommender.recommend(
            GROUP, {"solution": "popular"}, user_id="u01", k=5).results),
        "similar/i01": _ids(engine.recommender.similar_items(
            GROUP, {"solution": "similar"}, item_id="i01", k=3).results),
        "campaign home/u02": [r["itemId"] for r in engine.campaign_answer(
            GROUP, "home", CampaignRequest(user_id="u02", k=5))["itemList"]],
    }  # fmt: skip
    return {
        "tastebud_version": __version__,
        "group": GROUP,
        "token": {"name": TOKEN_NAME, "secret": token},
        "counts": engine.counts(GROUP),
        "solutions": ["popular", "similar"],
        "versions": [v.id for v in engine.list_solution_versions(GROUP)],
        "answers": answers,
    }


def _ids(results: Any) -> list[str]:
    return [r.id for r in results]


def make_sqlite(scratch: Path) -> dict[str, Any]:
    target = HERE / "sqlite"
    shutil.rmtree(target, ignore_errors=True)
    with Engine(Settings(home=target, default_group=GROUP)) as engine:
        expected = _fill(engine, scratch)
    db = target / "tastebud.db"
    with sqlite3.connect(db) as conn:  # one small file: the WAL folded in, free pages dropped
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("VACUUM")
    for leftover in target.iterdir():
        if leftover.name not in ("tastebud.db", "artifacts"):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return expected


def make_postgres(scratch: Path, admin_url: str) -> dict[str, Any]:
    target = HERE / "postgres"
    shutil.rmtree(target, ignore_errors=True)
    name = "tastebud_fixture_v6"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with Engine(Settings(home=target, default_group=GROUP, database_url=url)) as engine:
            expected = _fill(engine, scratch)
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--no-privileges", "--inserts", url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        (target / "dump.sql").write_text(dump)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
    for leftover in target.iterdir():
        if leftover.name not in ("dump.sql", "artifacts"):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", required=True, help="a PostgreSQL maintenance database URL")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/tastebud-fixture-data"))
    args = parser.parse_args()
    expected = {"sqlite": make_sqlite(args.scratch),
                "postgres": make_postgres(args.scratch, args.pg_url)}  # fmt: skip
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
