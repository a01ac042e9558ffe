"""``tastebud demo --scenario reels``: two users, two different reels, rendered."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.reels.render import count_frames


def test_the_reels_scenario_composes_different_reels_for_two_users(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "demo", "--scenario", "reels", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    assert "the two edit lists differ" in result.output
    folder = tmp_path / "reels-demo"
    users = ("action-fan", "comedy-fan")
    edits = {user: json.loads((folder / f"{user}.json").read_text()) for user in users}
    assert {c["title"].split("-")[0] for c in edits["action-fan"]["clips"]} == {"action"}
    assert {c["title"].split("-")[0] for c in edits["comedy-fan"]["clips"]} == {"comedy"}
    for user, data in edits.items():
        assert count_frames(folder / f"{user}.mp4") == data["frames"] == 300
