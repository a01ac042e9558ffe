"""``tastebud demo --no-serve`` runs the whole product on small generated data."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
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


def test_an_unknown_scenario_is_named_with_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "demo", "--scenario", "nope"])
    assert result.exit_code == 1
    assert "scenario 'nope': unknown" in result.output and "streaming" in result.output


def ran(settings: object, *, seed: int, serve: bool) -> None:
    """A registered scenario for the test below: says what it was given."""
    print(f"scenario ran seed={seed} serve={serve}")


def test_a_registered_scenario_runs_instead_of_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tastebud.demo import scenarios

    monkeypatch.setitem(
        scenarios.SCENARIOS, "probe", scenarios.Scenario("a test", f"{__name__}:ran")
    )
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "demo", "--scenario", "probe", "--seed", "7", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    assert "scenario ran seed=7 serve=False" in result.output
    assert not (tmp_path / "artifacts").exists()  # the default demo did not run
