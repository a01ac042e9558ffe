"""Rendering with real ffmpeg on generated footage, and the timeline files round-tripping."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from tastebud.errors import InvalidInput
from tastebud.reels import Catalogue, Clip, plan_reel
from tastebud.reels.render import count_frames, render
from tastebud.reels.timeline import edit_list, shots_in_otio, write_outputs


def frame_hashes(path: Path) -> list[str]:
    """The MD5 of each decoded frame."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


def plan_from(sources: list[Path], frames: int = 100):  # type: ignore[no-untyped-def]
    clips = tuple(Clip(f"t{t}", c, str(sources[(t + c) % len(sources)]), 7 * c + t, 7 * c + t + 15)
                  for t in range(3) for c in range(4))  # fmt: skip
    return plan_reel(["t0", "t1", "t2"], Catalogue(Fraction(25), clips), frames=frames,
                     cadence="ABAC")  # fmt: skip


def test_all_intra_sources_are_stream_copied_frame_exact(
    footage: dict[str, Path], tmp_path: Path
) -> None:
    plan = plan_from([footage["intra1"], footage["intra2"]])
    rendered = render(plan, tmp_path / "reel.mp4")
    assert rendered.mode == "copy"
    assert count_frames(rendered.path) == plan.frames == 100
    sources = {str(p): frame_hashes(p) for p in (footage["intra1"], footage["intra2"])}
    expected = [h for s in plan.shots for h in sources[s.clip.source][s.source_in : s.source_out]]
    assert frame_hashes(rendered.path) == expected  # the edit list's frames, in order
    assert [p.name for p in tmp_path.iterdir()] == ["reel.mp4"]  # no partial or list left


def test_long_gop_sources_are_encoded_with_exact_frame_counts(
    footage: dict[str, Path], tmp_path: Path
) -> None:
    plan = plan_from([footage["gop"]], frames=90)
    rendered = render(plan, tmp_path / "reel.mkv")
    assert rendered.mode == "encode" and count_frames(rendered.path) == 90


def test_a_missing_source_or_wrong_rate_fails_before_writing(
    footage: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        render(plan_from([tmp_path / "gone.mp4"]), tmp_path / "reel.mp4")
    clips = (Clip("t", 0, str(footage["intra1"]), 0, 30),)
    at_30 = plan_reel(["t"], Catalogue(Fraction(30), clips), frames=30)
    with pytest.raises(InvalidInput, match="25 fps, and the catalogue's timecodes are at 30"):
        render(at_30, tmp_path / "reel.mp4")
    assert list(tmp_path.iterdir()) == []


def test_the_timeline_round_trips_to_the_edit_list(tmp_path: Path) -> None:
    plan = plan_from(["/media/a.mov", "/media/b.mov"])
    data = edit_list(plan, userId="u1")
    write_outputs(plan, data, timeline=tmp_path / "r.otio", edit_file=tmp_path / "r.json")
    keys = ("title", "clip", "source", "in", "out")
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == json.loads(json.dumps(data)) and written["frames"] == 100
    assert shots_in_otio(tmp_path / "r.otio") == [{k: c[k] for k in keys} for c in data["clips"]]
    assert sum(c["frames"] for c in data["clips"]) == 100
    assert data["clips"][0]["inTimecode"] == "00:00:00:00"
