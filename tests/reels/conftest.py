"""Reel fixtures: generated test-pattern footage (real ffmpeg) and a trained solution."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tastebud.engine import Engine
from tastebud.reels.render import pattern_footage
from tests.api.conftest import api  # noqa: F401 (the API fixture, for tests/reels)
from tests.serving.conftest import write_clustered


def make_footage(path: Path, *, seconds: int = 8, gop: int = 1) -> Path:
    """160x90 25 fps ``testsrc2`` in H.264; ``gop=1``: all-intra, so cuts are frame exact."""
    if shutil.which("ffmpeg") is None:  # scripts/services.sh installs it; never skip
        pytest.fail("ffmpeg is not installed; the reel tests need it (apt-get install ffmpeg)")
    return pattern_footage(path, size="160x90", seconds=seconds, gop=gop)


@pytest.fixture(scope="session")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two all-intra sources and one long-GOP source (keyframe every 50 frames)."""
    folder = tmp_path_factory.mktemp("footage")
    return {
        "intra1": make_footage(folder / "intra1.mp4"),
        "intra2": make_footage(folder / "intra2.mp4"),
        "gop": make_footage(folder / "gop.mp4", gop=50),
    }


@pytest.fixture
def trained(engine: Engine, group: str, tmp_path: Path) -> Engine:
    """The clustered data (``u0..u59``, items ``i0..i39``; users < 30 like items < 20) and an
    EASE solution ``for-you`` trained on it."""
    interactions, items = write_clustered(tmp_path)
    engine.put_schema(group, "items", {"GENRES": "categorical"})
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.import_file(group, "items", items, mode="full")
    body = {"recipe": "user-personalization", "params": {"algorithm": "ease"}}
    engine.create_solution(group, "for-you", body)
    engine.train(group, "for-you")
    return engine


def catalogue_csv(folder: Path, sources: list[Path], titles: list[str], clips: int = 3) -> Path:
    """``clips`` clips of 1-2 s per title, cut from ``sources`` in turn (8 s each)."""
    lines = ["title,clip,source,start,end"]
    for t, title in enumerate(titles):
        for c in range(clips):
            start = (t + c * 3) % 6
            lines.append(f"{title},{c},{sources[(t + c) % len(sources)]},{start},"
                         f"{start + 1 + (t + c) % 2}")  # fmt: skip
    path = folder / "clips.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
