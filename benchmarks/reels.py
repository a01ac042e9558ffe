"""Personalized reels: planning time of the edit list and render time of a 30 s 640x360 reel.

    ./dev bench reels [--titles 200] [--runs 200]

Generates two 60 s 640x360 25 fps all-intra H.264 sources (ffmpeg ``testsrc2``), a catalogue
of ``--titles`` titles with 6 clips of 1-4 s each, and a random ranking; times ``plan_reel``
(the edit list: cadence, budgets, shots) and the JSON edit list, median over ``--runs``; then
renders the 30 s reel with ``render`` (stream copy) and times the median of 3 runs, checking
the frame count. Goals (issue 16): edit list <= 10 ms, render <= 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from tastebud.reels import Catalogue, Clip, plan_reel
from tastebud.reels.render import count_frames, pattern_footage, render
from tastebud.reels.timeline import edit_list

RESULTS = Path(__file__).resolve().parent / "results" / "reels.json"
FPS = Fraction(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--titles", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sources = [_footage(Path(folder) / f"source{i}.mp4") for i in range(2)]
        rng = random.Random(0)
        clips = tuple(_clip(rng, f"t{t}", c, sources[(t + c) % 2])
                      for t in range(args.titles) for c in range(6))  # fmt: skip
        catalogue = Catalogue(FPS, clips)
        ranking = [f"t{t}" for t in rng.sample(range(args.titles), args.titles)]
        plan_ms = []
        for _ in range(args.runs):
            started = time.perf_counter()
            plan = plan_reel(ranking, catalogue, frames=30 * 25)
            json.dumps(edit_list(plan))
            plan_ms.append((time.perf_counter() - started) * 1000)
        render_s = []
        for _ in range(3):
            started = time.perf_counter()
            rendered = render(plan, Path(folder) / "reel.mp4")
            render_s.append(time.perf_counter() - started)
        assert count_frames(rendered.path) == plan.frames == 750
    result = {
        "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "ffmpeg": _ffmpeg_version(),
        "titles": args.titles, "clips": len(clips), "shots": len(plan.shots),
        "plan_ms_median": round(statistics.median(plan_ms), 3),
        "plan_ms_p99": round(sorted(plan_ms)[int(0.99 * (len(plan_ms) - 1))], 3),
        "render_s_median": round(statistics.median(render_s), 3), "render_mode": rendered.mode,
        "frames": plan.frames,
    }  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _clip(rng: random.Random, title: str, number: int, source: str) -> Clip:
    start = rng.randrange(0, 60 * 25 - 100)
    return Clip(title, number, source, start, start + rng.randint(25, 100))


def _footage(path: Path) -> str:
    return str(pattern_footage(path, size="640x360", seconds=60))


def _ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[0].split(" Copyright")[0]


if __name__ == "__main__":
    main()
