"""``client.compose_reel`` over a real server: the SDK sends the request and raises the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastebud.client import Client
from tastebud.errors import InvalidInput, NotFound
from tests.serving.conftest import write_clustered
from tests.test_client import client, server  # noqa: F401  (fixtures: a server, a client)


def test_compose_reel_through_the_sdk(client: Client, tmp_path: Path) -> None:  # noqa: F811
    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count")
    client.train("popular", poll_interval=0.02)
    clips = [{"title": f"i{t}", "clip": c, "source": f"/m/i{t}.mp4", "start": c * 2,
              "end": c * 2 + 1.5} for t in range(6) for c in range(2)]  # fmt: skip
    reel = client.compose_reel("u0", clips, seconds=4, cadence="ABAC", solution="popular")
    assert reel["frames"] == 100 and reel["cadence"] == "ABAC"
    # 38-frame clips: A, B, A already hold 114 frames; shots of 33 frames plus one left over
    # for the best title (A has two shots, B one).
    assert [c["letter"] for c in reel["clips"]] == ["A", "B", "A"]
    assert [t["frames"] for t in reel["titles"]] == [67, 33]
    with pytest.raises(NotFound, match="user 'nobody'"):
        client.compose_reel("nobody", clips, solution="popular")
    with pytest.raises(InvalidInput, match="cadence: letter Z"):
        client.compose_reel("u0", clips, cadence="AZ", solution="popular")
