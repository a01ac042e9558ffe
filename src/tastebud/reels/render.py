"""Cut and join a planned reel with ffmpeg, frame exact.

When every source is all-intra (each packet of the shots' ranges a keyframe: MJPEG, ProRes,
DNxHD, intra-only H.264, …) and the sources share codec and size, the shots are joined with
ffmpeg's concat demuxer and stream copy: no decoding, and the reel's frames are the sources'
frames, bit for bit. Otherwise each shot is decoded from its exact first frame and the reel is
encoded once (H.264). Video only: audio is not carried yet.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from tastebud.errors import InvalidInput, TastebudError
from tastebud.reels.compose import Plan, Shot
from tastebud.reels.timeline import write_atomically

Mode = Literal["copy", "encode"]
_TIMEOUT_SECONDS = 600


class RenderFailed(TastebudError):
    """ffmpeg is missing or failed; the message carries the end of its log."""


@dataclass(frozen=True, slots=True)
class Source:
    path: str
    codec: str
    size: tuple[int, int]
    fps: Fraction
    all_intra: bool  # every packet of the shots' ranges is a keyframe


@dataclass(frozen=True, slots=True)
class Rendered:
    path: Path
    mode: Mode
    frames: int


def render(plan: Plan, output: Path) -> Rendered:
    """Write ``plan`` to ``output`` (``.mp4``, ``.mov`` or ``.mkv``), renamed into place when
    complete.

    Raises:
        InvalidInput: a missing source, a source whose frame rate is not the catalogue's.
        RenderFailed: ffmpeg is not installed or failed.
    """
    if output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise InvalidInput(f"{output}: render to .mp4, .mov or .mkv")
    sources = {path: probe(path, [s for s in plan.shots if s.clip.source == path], plan.fps)
               for path in dict.fromkeys(s.clip.source for s in plan.shots)}  # fmt: skip
    mode: Mode = "copy" if can_copy(list(sources.values())) else "encode"
    command = _copy_command if mode == "copy" else _encode_command
    write_atomically(output, lambda partial: _ffmpeg(command(plan, sources, partial)))
    return Rendered(output, mode, plan.frames)


def can_copy(sources: Sequence[Source]) -> bool:
    first = sources[0]
    return all(s.all_intra and (s.codec, s.size) == (first.codec, first.size) for s in sources)


def probe(path: str, shots: Sequence[Shot], fps: Fraction) -> Source:
    """The source's video stream, and whether the packets the shots need are all keyframes.

    Raises:
        InvalidInput: no such file, no video stream, or a frame rate other than ``fps``.
    """
    if "://" in path or not Path(path).is_file():
        raise InvalidInput(f"source {path!r}: no such file (rendering reads local files)")
    intervals = ",".join(f"{float(s.source_in / fps)}%+#{s.frames}" for s in shots)
    found = json.loads(_run([
        _tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-read_intervals", intervals,
        "-show_entries", "stream=codec_name,width,height,r_frame_rate:packet=flags",
        "-of", "json", path,
    ]))  # fmt: skip
    if not found.get("streams"):
        raise InvalidInput(f"source {path!r}: no video stream")
    stream = found["streams"][0]
    rate = Fraction(stream["r_frame_rate"])
    if rate != fps:
        raise InvalidInput(f"source {path!r}: {rate} fps, and the catalogue's timecodes are at "
                           f"{fps} fps; give the catalogue its rate (--fps {rate})")  # fmt: skip
    packets = found.get("packets", [])
    intra = bool(packets) and all(p.get("flags", "").startswith("K") for p in packets)
    return Source(path, stream["codec_name"], (stream["width"], stream["height"]), rate, intra)


def _copy_command(plan: Plan, sources: dict[str, Source], output: Path) -> list[str]:
    # The concat demuxer starts each file at the keyframe at or before `inpoint` (every frame,
    # here: a quarter frame past the in-point lands on it whatever the rounding) and stops
    # before the first packet at or past `outpoint` (half a frame before the out-point). The
    # explicit `duration` places the next shot exactly one frame after this one's last.
    lines = ["ffconcat version 1.0"]
    for shot in plan.shots:
        inpoint = (shot.source_in + Fraction(1, 4)) / plan.fps
        outpoint = (shot.source_out - Fraction(1, 2)) / plan.fps
        lines += [f"file {_quote(shot.clip.source)}", f"inpoint {float(inpoint):.6f}",
                  f"outpoint {float(outpoint):.6f}",
                  f"duration {float(shot.frames / plan.fps):.6f}"]  # fmt: skip
    listing = output.with_name(output.name + ".ffconcat")
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [_tool("ffmpeg"), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
            str(listing), "-map", "0:v:0", "-c", "copy", str(output)]  # fmt: skip


def _encode_command(plan: Plan, sources: dict[str, Source], output: Path) -> list[str]:
    width, height = sources[plan.shots[0].clip.source].size
    inputs: list[str] = []
    chains: list[str] = []
    for index, shot in enumerate(plan.shots):
        # Seeking a quarter frame early: ffmpeg decodes from the keyframe before and drops
        # frames before that time, so the first frame kept is the in-point.
        start = max(Fraction(0), (shot.source_in - Fraction(1, 4)) / plan.fps)
        inputs += ["-ss", f"{float(start):.6f}", "-i", shot.clip.source]
        chains.append(f"[{index}:v:0]trim=end_frame={shot.frames},setpts=PTS-STARTPTS,"
                      f"scale={width}:{height},setsar=1[v{index}]")  # fmt: skip
    joined = "".join(f"[v{i}]" for i in range(len(plan.shots)))
    graph = ";".join(chains) + f";{joined}concat=n={len(plan.shots)}:v=1:a=0[reel]"
    return [_tool("ffmpeg"), "-v", "error", "-y", *inputs, "-filter_complex", graph,
            "-map", "[reel]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
            "-pix_fmt", "yuv420p", "-r", str(plan.fps), str(output)]  # fmt: skip


def pattern_footage(path: Path, *, size: str, seconds: int, gop: int = 1) -> Path:
    """25 fps ffmpeg ``testsrc2`` footage in H.264 (demo, tests, benchmark); ``gop=1``: every
    frame a keyframe, so cuts are frame exact and copy-only."""
    source = f"testsrc2=size={size}:rate=25"
    _run([_tool("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
          "-c:v", "libx264", "-preset", "ultrafast", "-x264-params", f"keyint={gop}",
          "-pix_fmt", "yuv420p", str(path)])  # fmt: skip
    return path


def _ffmpeg(command: list[str]) -> None:
    try:
        _run(command)
    finally:
        for argument in command:
            if argument.endswith(".ffconcat"):
                Path(argument).unlink(missing_ok=True)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS)
    if done.returncode != 0:
        log = done.stderr.strip()[-2000:]
        raise RenderFailed(f"{Path(command[0]).name} failed (exit {done.returncode}): {log}")
    return done.stdout


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RenderFailed(f"{name} is not installed; install ffmpeg (apt-get install ffmpeg) "
                           "to render (the timeline and edit list need no ffmpeg)")  # fmt: skip
    return path


def _quote(path: str) -> str:
    """A path for an ffconcat ``file`` line (single-quoted, quotes escaped)."""
    return "'" + str(Path(path).resolve()).replace("'", "'\\''") + "'"


def count_frames(path: Path) -> int:
    """Video frames in a file (its packets counted, nothing decoded)."""
    out = _run([
        _tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-count_packets",
        "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path),
    ])  # fmt: skip
    return int(out.strip())
