"""A planned reel as an edit list (JSON) and an OpenTimelineIO timeline, written atomically.

The edit list is the plain record a script reads: for each shot its source and in/out frames
(out exclusive) plus timecodes. The OTIO timeline holds the same shots as clips on one video
track (each clip's metadata under ``tastebud`` names the title, rank, letter and clip), so an
editor (DaVinci Resolve, Premiere through OTIO adapters, ``otioview``) opens the reel as a cut.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from tastebud.errors import InvalidInput
from tastebud.reels.compose import Plan, Shot


def edit_list(plan: Plan, **about: Any) -> dict[str, Any]:
    """The reel as JSON-ready data; ``about`` (user, version, …) is copied to the top."""
    return {
        **about,
        "fps": str(plan.fps),
        "frames": plan.frames,
        "seconds": float(plan.frames / plan.fps),
        "cadence": plan.cadence,
        "titles": [{"title": title, "rank": rank, "frames": frames}
                   for rank, (title, frames) in enumerate(plan.screen_time().items(), 1)],
        "clips": [_entry(shot, plan.fps) for shot in plan.shots],
    }  # fmt: skip


def _entry(shot: Shot, fps: Fraction) -> dict[str, Any]:
    return {
        "title": shot.clip.title, "rank": shot.rank, "letter": shot.letter,
        "clip": shot.clip.clip, "source": shot.clip.source,
        "in": shot.source_in, "out": shot.source_out, "frames": shot.frames,
        "inTimecode": timecode(shot.source_in, fps), "outTimecode": timecode(shot.source_out, fps),
        "durationClass": shot.clip.duration_class,
    }  # fmt: skip


def timecode(frame: int, fps: Fraction) -> str:
    """``HH:MM:SS:FF`` (non-drop, at the nearest whole rate)."""
    nominal = round(fps)
    seconds, frames = divmod(frame, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def to_otio(plan: Plan, *, name: str = "tastebud reel") -> otio.schema.Timeline:
    rate = float(plan.fps)
    timeline = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="reel", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for shot in plan.shots:
        clip = otio.schema.Clip(
            name=f"{shot.clip.title} #{shot.clip.clip}",
            media_reference=otio.schema.ExternalReference(target_url=shot.clip.source),
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(shot.source_in, rate),
                otio.opentime.RationalTime(shot.frames, rate),
            ),
        )
        clip.metadata["tastebud"] = {"title": shot.clip.title, "clip": shot.clip.clip,
                                     "rank": shot.rank, "letter": shot.letter}  # fmt: skip
        track.append(clip)
    return timeline


def otio_json(plan: Plan) -> str:
    return str(otio.adapters.write_to_string(to_otio(plan), "otio_json"))


def shots_in_otio(path: Path) -> list[dict[str, Any]]:
    """The shots a ``.otio`` file holds, as ``{title, clip, source, in, out}`` (frames)."""
    timeline = otio.adapters.read_from_file(str(path))
    shots = []
    for clip in timeline.find_clips():
        start, duration = clip.source_range.start_time, clip.source_range.duration
        about = clip.metadata["tastebud"]
        shots.append({
            "title": about["title"], "clip": about["clip"],
            "source": clip.media_reference.target_url,
            "in": round(start.value), "out": round(start.value + duration.value),
        })  # fmt: skip
    return shots


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file beside ``path``, then rename it: readers never see half a
    file, and a failure leaves no file behind.

    Raises:
        InvalidInput: the folder cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix,
                                        dir=path.parent)  # fmt: skip
    except OSError as error:
        raise InvalidInput(f"{path}: cannot write there ({error.strerror})") from None
    os.close(handle)
    partial = Path(name)
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def write_outputs(plan: Plan, edits: dict[str, Any], *, timeline: Path, edit_file: Path) -> None:
    """The ``.otio`` timeline and the JSON edit list, each renamed into place when complete."""
    write_text(timeline, otio_json(plan))
    write_text(edit_file, json.dumps(edits, indent=2) + "\n")
