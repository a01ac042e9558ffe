"""Reels end to end: the CLI (with a render) and POST …/reels over real HTTP, with their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.engine import Engine
from tastebud.reels.render import count_frames
from tastebud.reels.timeline import shots_in_otio
from tests.api.conftest import Api
from tests.reels.conftest import catalogue_csv

TITLES = [f"i{i}" for i in range(0, 40, 3)]  # both clusters: items < 20 are cluster A


def clips(n_titles: int = len(TITLES)) -> list[dict[str, Any]]:
    return [{"title": t, "clip": c, "source": f"/m/{t}.mp4", "start": f"00:00:0{c}:00",
             "end": f"00:00:0{c + 1}:00"} for t in TITLES[:n_titles] for c in range(3)]  # fmt: skip


@pytest.fixture
def reels_api(trained: Engine, api: Api) -> Api:
    """The API over the trained engine."""
    return api


def post(api: Api, **body: Any) -> Any:
    body = {"solution": "for-you", "userId": "u1", "clips": clips(), "seconds": 6} | body
    return api.http.post(api.url("/reels"), json=body, headers=api.admin)


def test_a_reel_follows_each_users_ranking(reels_api: Api) -> None:
    fans = {user: post(reels_api, userId=user).json() for user in ("u1", "u45")}
    for answer in fans.values():
        assert answer["frames"] == 150 and sum(c["frames"] for c in answer["clips"]) == 150
        assert answer["timeline"]["OTIO_SCHEMA"].startswith("Timeline")
        times = [t["frames"] for t in answer["titles"]]
        assert times == sorted(times, reverse=True)
    # u1 likes items < 20, u45 items >= 20: their best titles come from different clusters.
    best = {user: int(answer["titles"][0]["title"][1:]) for user, answer in fans.items()}
    assert best["u1"] < 20 <= best["u45"]
    ranked = reels_api.engine.recommender.rank(
        reels_api.group, {"solution": "for-you"}, user_id="u1", item_ids=TITLES
    )
    assert [t["title"] for t in fans["u1"]["titles"]] == [r.id for r in ranked.results][:4]


def test_a_filter_drops_titles(reels_api: Api) -> None:
    reels_api.engine.create_filter(reels_api.group, "genre-b",
                                   'INCLUDE ItemID WHERE Items.GENRES IN ("b")')  # fmt: skip
    answer = post(reels_api, filterName="genre-b").json()
    assert answer["clips"] and all(int(c["title"][1:]) >= 20 for c in answer["clips"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [({"solution": "nope"}, 404, "nope"), ({"userId": "stranger"}, 404, "user 'stranger'"),
     ({"cadence": "AB?"}, 422, r"'\?' \(letter 3\) is not a letter"),
     ({"seconds": 601}, 422, "seconds"), ({"seconds": 120}, 422, "the clips can fill"),
     ({"clips": clips(1) * 2000}, 413, "at most 5000"),
     ({"clips": [{"title": "i0", "clip": 0, "source": "s", "start": "00:00:02:00", "end": "1"}]},
      422, r"clips\[0\]: end: '1' is not after start"),
     ({"clips": [{"title": "i0", "clip": 0, "source": "s", "start": "soon", "end": "1"}]},
      422, r"clips\[0\]: start: 'soon' is not a timecode")],
)  # fmt: skip
def test_bad_requests_get_4xx_with_the_reason(
    reels_api: Api, body: dict[str, Any], status: int, message: str
) -> None:
    response = post(reels_api, **body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message"}
    assert re.search(message, error["message"]), error


def test_an_ingest_token_may_not_compose(reels_api: Api) -> None:
    body = {"solution": "for-you", "userId": "u1", "clips": clips()}
    response = reels_api.http.post(reels_api.url("/reels"), json=body, headers=reels_api.ingest)
    assert response.status_code == 403


def test_the_cli_writes_timeline_edit_list_and_render(
    trained: Engine, group: str, footage: dict[str, Path], tmp_path: Path
) -> None:
    catalogue = catalogue_csv(tmp_path, [footage["intra1"], footage["intra2"]], TITLES)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "--home", str(trained.settings.home), "--database-url", trained.settings.store_url,
        "--group", group, "reels", "compose", "--solution", "for-you", "--user", "u1",
        "--clips", str(catalogue), "--seconds", "4", "--cadence", "ABAC",
        "--output", str(out / "reel.otio"), "--render", str(out / "reel.mp4"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    edits = json.loads((out / "reel.json").read_text())
    assert edits["frames"] == 100 == count_frames(out / "reel.mp4")
    assert [s["in"] for s in shots_in_otio(out / "reel.otio")] == [c["in"] for c in edits["clips"]]
    assert "rendered 100 frames (copy)" in result.output


def test_the_cli_writes_nothing_when_it_fails(trained: Engine, group: str, tmp_path: Path) -> None:
    catalogue = catalogue_csv(tmp_path, [tmp_path / "missing.mp4"], TITLES)
    result = CliRunner().invoke(app, [
        "--home", str(trained.settings.home), "--database-url", trained.settings.store_url,
        "--group", group, "reels", "compose", "--solution", "for-you", "--user", "u1",
        "--clips", str(catalogue), "--output", str(tmp_path / "o" / "r.otio"),
        "--seconds", "3", "--render", str(tmp_path / "o" / "r.mp4"),
    ])  # fmt: skip
    assert result.exit_code == 1 and "missing.mp4': no such file" in result.output
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []
