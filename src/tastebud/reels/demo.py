"""``tastebud demo --scenario reels``: two users with different tastes, a reel for each.

Twelve titles in two genres, forty users who each watch one genre, an EASE solution trained on
them, three clips per title (generated ffmpeg ``testsrc2`` footage when ffmpeg is installed),
then a 12-second reel composed for an action fan and for a comedy fan: their edit lists differ
because their rankings do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from tastebud.engine import Engine
from tastebud.reels.catalogue import read_catalogue
from tastebud.reels.render import pattern_footage, render
from tastebud.reels.service import Reel, ReelRequest
from tastebud.reels.timeline import write_outputs
from tastebud.settings import Settings

GROUP = "reels-demo"
SOLUTION = "for-you"
GENRES = ("action", "comedy")
TITLES_PER_GENRE = 6
CLIPS_PER_TITLE = 3
SECONDS = 12.0
FANS = {"action-fan": "action", "comedy-fan": "comedy"}

NO_FFMPEG = ("[yellow]ffmpeg is not installed: the reels are planned (edit lists and "
             "timelines) but not rendered; install ffmpeg to see them[/]")  # fmt: skip
RECIPE = {"recipe": "user-personalization", "params": {"algorithm": "ease"}}

console = Console()


def run(settings: Settings, *, seed: int, serve: bool) -> None:
    folder = settings.home / "reels-demo"
    folder.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]tastebud demo: personalized reels")
    with Engine(settings) as engine:
        engine.init()
        _train(engine, folder, seed)
        footage = shutil.which("ffmpeg") is not None
        catalogue = read_catalogue(_catalogue(folder, footage=footage))
        if not footage:
            console.print(NO_FFMPEG)
        reels = {}
        for user in FANS:
            request = ReelRequest(user_id=user, catalogue=catalogue, seconds=SECONDS)
            reel = engine.reels.compose(GROUP, {"solution": SOLUTION}, request)
            reels[user] = reel
            _save(reel, folder / user, render_it=footage)
    differ = [s.clip for s in reels["action-fan"].plan.shots] != [
        s.clip for s in reels["comedy-fan"].plan.shots
    ]
    console.print(f"the two edit lists {'differ' if differ else 'are the same'}: each reel "
                  "follows its user's ranking")  # fmt: skip
    if serve:
        console.print("over HTTP: `tastebud serve`, then POST /v1/dataset-groups/reels-demo/reels "
                      "(docs/reels.md); this scenario does not keep a server running")  # fmt: skip


def _train(engine: Engine, folder: Path, seed: int) -> None:
    """Users who watch one genre each; the two fans watch two titles of theirs."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, int]] = []
    for user in range(40):
        genre = user % 2
        watched = rng.choice(TITLES_PER_GENRE, size=4, replace=False)
        rows += [(f"u{user}", _title(genre, int(t)), 1_000 + len(rows)) for t in watched]
    for fan, taste in FANS.items():
        rows += [(fan, _title(GENRES.index(taste), t), 10_000 + t) for t in (4, 5)]
    interactions = folder / "interactions.csv"
    users, items, times = zip(*rows, strict=True)
    pl.DataFrame({"USER_ID": users, "ITEM_ID": items, "TIMESTAMP": times}).write_csv(interactions)
    engine.ensure_group(GROUP)
    engine.import_file(GROUP, "interactions", interactions, mode="full")
    engine.create_solution(GROUP, SOLUTION, RECIPE, replace=True)
    version = engine.train(GROUP, SOLUTION, seed=seed)
    console.print(f"trained {SOLUTION} ({version.id}) on {len(rows)} interactions")


def _title(genre: int, number: int) -> str:
    return f"{GENRES[genre]}-{number}"


def _catalogue(folder: Path, *, footage: bool) -> Path:
    """Three 2-4 s clips per title from one 12 s source per title (generated when ``footage``)."""
    lines = ["title,clip,source,start,end,duration_class"]
    for genre in range(len(GENRES)):
        for number in range(TITLES_PER_GENRE):
            title = _title(genre, number)
            source = folder / "footage" / f"{title}.mp4"
            if footage:
                _generate(source)
            for clip in range(CLIPS_PER_TITLE):
                length = 2 + (clip + number) % 3
                lines.append(f"{title},{clip},footage/{title}.mp4,00:00:{clip * 4:02d}:00,"
                             f"00:00:{clip * 4 + length:02d}:00,short")  # fmt: skip
    path = folder / "clips.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _generate(path: Path) -> None:
    """12 s of all-intra H.264 test pattern (every frame a keyframe: exact, copy-only cuts)."""
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern_footage(path, size="320x180", seconds=12)


def _save(reel: Reel, stem: Path, *, render_it: bool) -> None:
    write_outputs(reel.plan, reel.edit_list(), timeline=stem.with_suffix(".otio"),
                  edit_file=stem.with_suffix(".json"))  # fmt: skip
    table = Table(title=f"reel for {reel.user_id} (cadence {reel.plan.cadence})")
    for column in ("#", "letter", "title", "clip", "in", "out", "seconds"):
        table.add_column(column)
    for number, shot in enumerate(reel.plan.shots, 1):
        table.add_row(str(number), shot.letter, shot.clip.title, str(shot.clip.clip),
                      str(shot.source_in), str(shot.source_out),
                      f"{float(shot.frames / reel.plan.fps):.2f}")  # fmt: skip
    console.print(table)
    outputs = f"{stem.with_suffix('.otio')}, {stem.with_suffix('.json')}"
    if render_it:
        rendered = render(reel.plan, stem.with_suffix(".mp4"))
        outputs += f", {rendered.path} ({rendered.frames} frames, {rendered.mode})"
    console.print(f"wrote {outputs}")
