"""Console fixtures: the API app over the test's engine (SQLite and PostgreSQL), a test client
signed in to the console with an admin token, and the helpers the tests share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tastebud.api.app import create_app
from tastebud.console.session import COOKIE
from tastebud.engine import Engine
from tests.api.conftest import TestClient
from tests.serving.conftest import write_clustered


@dataclass
class Console:
    http: TestClient
    engine: Engine
    group: str
    admin_token: str

    def url(self, suffix: str = "") -> str:
        return f"/console/groups/{self.group}/{suffix}"

    def sign_in(self, token: str) -> None:
        answer = self.http.post("/console/signin", data={"token": token}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        assert COOKIE in self.http.cookies


HX = {"HX-Request": "true"}


@pytest.fixture
def console(engine: Engine, group: str) -> Iterator[Console]:
    admin = engine.create_token(f"{group}-admin", scope="admin")
    with TestClient(create_app(engine.settings, engine=engine)) as http:
        signed = Console(http, engine, group, admin)
        signed.sign_in(admin)
        yield signed


@pytest.fixture
def loaded(console: Console, tmp_path: Path) -> Console:
    """The clustered data (users u0..u59, items i0..i39 with a title and genre) imported, a
    popularity solution trained and deployed as campaign ``home``."""
    engine, group = console.engine, console.group
    interactions, items = write_clustered(tmp_path)
    engine.put_schema(group, "items", {"TITLE": "textual", "GENRES": "categorical"})
    engine.import_file(group, "interactions", interactions, mode="full")
    titled = items.with_name("titled.csv")
    lines = items.read_text().splitlines()
    titled.write_text(
        "\n".join(
            ["ITEM_ID,GENRES,TITLE"]
            + [f"{line},Title of {line.split(',')[0]}" for line in lines[1:]]
        )
        + "\n"
    )
    engine.import_file(group, "items", titled, mode="full")
    engine.create_solution(group, "popular", {"recipe": "popularity-count"})
    engine.train(group, "popular")
    engine.create_campaign(group, "home", "popular", config={"min_interactions": 0})
    return console
