"""``tastebud demo --no-serve`` runs the whole product on small generated data."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from tastebud.cli import app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_trains_serves_and_reacts(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "--home", str(tmp_path), "demo", "--no-serve", "--users", "400", "--items", "150",
        "--port", str(free_port()),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = ("trained solutions", "for-you", "more-like-this", "more like", "trending now",
                "for new-visitor, after those watches", "without retraining", "campaign home",
                "campaign cache: miss before, miss after the events")  # fmt: skip
    for text in expected:
        assert text in result.output
    assert (tmp_path / "artifacts").is_dir() and len(list((tmp_path / "artifacts").iterdir())) == 3
