"""Personalized reels: ``tastebud reels compose`` (edit list, OTIO timeline, optional render)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastebud.cli._common import (
    console,
    engine,
    existing_file,
    fail_cleanly,
    group_option,
    key_values,
    print_json,
    resolve_group,
)
from tastebud.reels import Reel, ReelRequest, parse_fps, read_catalogue
from tastebud.reels.render import render
from tastebud.reels.timeline import write_outputs
from tastebud.serving import VersionRef

reels_app = typer.Typer(help="Personalized reels: ranked titles cut into a trailer.",
                        no_args_is_help=True)  # fmt: skip


@reels_app.command("compose")
def compose(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="The user the reel is for.")],
    clips: Annotated[Path, typer.Option(help="Clip catalogue (.csv or .json).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The OTIO timeline (.otio).")],
    seconds: Annotated[float, typer.Option(help="Length of the reel.")] = 30.0,
    solution: Annotated[str | None, typer.Option(help="Its newest version ranks.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Or this version.")] = None,
    cadence: Annotated[
        str | None, typer.Option(help="Order of the ranked titles, e.g. ABCADBE (the default).")
    ] = None,
    fps: Annotated[str, typer.Option(help="Frame rate of the catalogue's timecodes.")] = "25",
    edit_list: Annotated[
        Path | None, typer.Option(help="JSON edit list (default: the output with .json).")
    ] = None,
    render_to: Annotated[
        Path | None, typer.Option("--render", help="Also cut the reel with ffmpeg (.mp4).")
    ] = None,
    filter_name: Annotated[str | None, typer.Option("--filter", help="A filter, by name.")] = None,
    filter_value: Annotated[
        list[str] | None, typer.Option(help="KEY=V1,V2: values of the filter's $KEY.")
    ] = None,
    group: str | None = group_option(),
    as_json: Annotated[bool, typer.Option("--json", help="Print the edit list.")] = False,
) -> None:
    """Compose a reel of the user's top titles: the timeline, the edit list, optionally the
    video. Nothing is written when something fails."""
    started = time.perf_counter()
    with fail_cleanly():
        catalogue = read_catalogue(existing_file(clips), fps=parse_fps(fps))
    request = ReelRequest(user_id=user, catalogue=catalogue, seconds=seconds, cadence=cadence,
                          filter_name=filter_name,
                          filter_values=key_values(filter_value, "--filter-value"))  # fmt: skip
    with engine(ctx) as eng:
        target: VersionRef = {"solution": solution, "version_id": version}
        reel = eng.reels.compose(resolve_group(ctx, group), target, request)
        planned = time.perf_counter()
        rendered = render(reel.plan, render_to) if render_to is not None else None
        edits = edit_list or output.with_suffix(".json")
        write_outputs(reel.plan, reel.edit_list(), timeline=output, edit_file=edits)
    if as_json:
        print_json(reel.edit_list())
        return
    _show(reel)
    console.print(f"planned in {(planned - started) * 1000:.0f} ms → {output}, {edits}")
    if rendered is not None:
        console.print(f"rendered {rendered.frames} frames ({rendered.mode}) → {rendered.path}")


def _show(reel: Reel) -> None:
    plan = reel.plan
    table = Table(title=f"reel for {reel.user_id}: {plan.frames} frames, cadence {plan.cadence} "
                        f"(version {reel.version_id})")  # fmt: skip
    for column in ("#", "letter", "title", "clip", "source", "in", "out", "frames"):
        table.add_column(column)
    for number, shot in enumerate(plan.shots, 1):
        table.add_row(str(number), shot.letter, shot.clip.title, str(shot.clip.clip),
                      Path(shot.clip.source).name, str(shot.source_in), str(shot.source_out),
                      str(shot.frames))  # fmt: skip
    console.print(table)
