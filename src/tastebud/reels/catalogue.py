"""The clip catalogue: which footage each title has, read from CSV or JSON, in whole frames.

One row per clip: ``title`` (the item id), ``clip`` (its number within the title), ``source``
(the asset: a path, relative to the catalogue's folder, or a URL), ``start`` and ``end``
(timecodes), optionally ``duration_class`` (a label such as ``short``, carried to the outputs).
Every timecode becomes a frame number at the catalogue's frame rate, so planning and rendering
count frames and never compare floats. A bad row is refused with its file, line and field.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from tastebud.errors import InvalidInput

DEFAULT_FPS = Fraction(25)
REQUIRED = ("title", "clip", "source", "start", "end")
OPTIONAL = ("duration_class",)
TIMECODE_FORMATS = (
    "HH:MM:SS:FF (SMPTE, non-drop), HH:MM:SS.sss or MM:SS.sss, seconds (12.5) or frames (300f)"
)
_SMPTE = re.compile(r"(\d+):([0-5]\d):([0-5]\d):(\d\d)")
_CLOCK = re.compile(r"(?:(\d+):)?([0-5]?\d):([0-5]?\d(?:\.\d+)?)")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_FRAMES = re.compile(r"(\d+)f")


@dataclass(frozen=True, slots=True)
class Clip:
    """One clip of a title: frames ``start`` (first shown) to ``end`` (first not shown)."""

    title: str
    clip: int
    source: str
    start: int
    end: int
    duration_class: str | None = None

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Clips by title (each title's clips in clip-number order) at one frame rate."""

    fps: Fraction
    clips: tuple[Clip, ...]

    def by_title(self) -> dict[str, list[Clip]]:
        titles: dict[str, list[Clip]] = {}
        for clip in sorted(self.clips, key=lambda c: (c.title, c.clip)):
            titles.setdefault(clip.title, []).append(clip)
        return titles

    def titles(self) -> list[str]:
        """Each title once, in catalogue order."""
        return list(dict.fromkeys(clip.title for clip in self.clips))


def parse_fps(text: str | float | Fraction) -> Fraction:
    """``25``, ``29.97`` or ``30000/1001`` as an exact rate.

    Raises:
        InvalidInput: not a positive number.
    """
    try:
        fps = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        message = f"fps: expected a number such as 25 or 30000/1001, got {text!r}"
        raise InvalidInput(message) from None
    if not 1 <= fps <= 1000:
        raise InvalidInput(f"fps: expected 1 to 1000 frames per second, got {text!r}")
    return fps


def parse_timecode(value: str | float, fps: Fraction) -> int:
    """A timecode as a frame number at ``fps`` (times between frames go to the nearest one).

    Raises:
        InvalidInput: none of :data:`TIMECODE_FORMATS` (the message lists them).
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{value!r} is not a timecode")
    text = str(value).strip()
    if match := _SMPTE.fullmatch(text):
        hours, minutes, seconds, frame = (int(part) for part in match.groups())
        nominal = round(fps)  # frames per second of the FF field (non-drop counting)
        if frame >= nominal:
            raise InvalidInput(f"{text!r}: frame {frame} does not exist at {nominal} fps")
        return (hours * 3600 + minutes * 60 + seconds) * nominal + frame
    if match := _FRAMES.fullmatch(text):
        return int(match.group(1))
    if _SECONDS.fullmatch(text):
        return round(Fraction(text) * fps)
    if match := _CLOCK.fullmatch(text):
        hour, minute, second = match.groups()
        total = int(hour or 0) * 3600 + int(minute) * 60 + Fraction(second)
        return round(total * fps)
    hint = " (drop-frame ';' timecodes are not supported)" if ";" in text else ""
    raise InvalidInput(f"{text!r} is not a timecode{hint}; use {TIMECODE_FORMATS}")


def read_catalogue(path: Path, *, fps: Fraction = DEFAULT_FPS) -> Catalogue:
    """Read a ``.csv`` or ``.json`` catalogue (a list of clip objects, or ``{"clips": [...]}``);
    relative sources are resolved against the file's folder.

    Raises:
        InvalidInput: unreadable file, unknown format, or a bad row (file, line and field named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: cannot read the clip catalogue ({error})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, text)
    elif suffix == ".json":
        rows = _json_rows(path, text)
    else:
        raise InvalidInput(f"{path}: a clip catalogue is a .csv or .json file")
    return catalogue_from_rows(rows, fps=fps, folder=path.parent)


def parse_catalogue(text: str, *, name: str, fps: Fraction = DEFAULT_FPS) -> Catalogue:
    """A catalogue given as text (a form's field): JSON when it starts with ``[`` or ``{``,
    else CSV with a header; ``name`` stands for the file in messages. Sources stay as given.

    Raises:
        InvalidInput: not JSON, a missing column, or a bad row (its place and field named).
    """
    json_text = text.lstrip()[:1] in ("[", "{")
    rows = _json_rows(name, text) if json_text else _csv_rows(name, text)
    return catalogue_from_rows(rows, fps=fps)


def catalogue_from_rows(
    rows: Iterable[tuple[str, Mapping[str, Any]]], *, fps: Fraction, folder: Path | None = None
) -> Catalogue:
    """Clips from ``(where, row)`` pairs, ``where`` naming the row in messages (``file:3``).

    Raises:
        InvalidInput: a bad row (its place and field named), a clip listed twice, or no clip.
    """
    clips: list[Clip] = []
    seen: dict[tuple[str, int], str] = {}
    for where, row in rows:
        clip = _clip(where, row, fps, folder)
        first = seen.setdefault((clip.title, clip.clip), where)
        if first != where:
            raise InvalidInput(f"{where}: clip {clip.clip} of {clip.title!r} is also at {first}")
        clips.append(clip)
    if not clips:
        raise InvalidInput("the clip catalogue has no clips")
    return Catalogue(fps, tuple(clips))


def _clip(where: str, row: Mapping[str, Any], fps: Fraction, folder: Path | None) -> Clip:
    row = {_snake(key): value for key, value in row.items()}
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise InvalidInput(f"{where}: unknown field {unknown[0]!r}; fields are "
                           f"{', '.join(REQUIRED + OPTIONAL)}")  # fmt: skip
    for name in REQUIRED:
        if row.get(name) is None or str(row[name]).strip() == "":
            raise InvalidInput(f"{where}: {name}: missing")
    number = str(row["clip"]).strip()
    if not number.isdigit():
        raise InvalidInput(f"{where}: clip: expected a clip number (0, 1, 2, …), got {number!r}")
    start, end = (_frame(where, name, row[name], fps) for name in ("start", "end"))
    if end <= start:
        raise InvalidInput(
            f"{where}: end: {row['end']!r} is not after start {row['start']!r} "
            f"(frames {end} and {start} at {fps} fps)"
        )
    source = str(row["source"]).strip()
    if folder is not None and "://" not in source and not Path(source).is_absolute():
        source = str(folder / source)
    label = row.get("duration_class")
    return Clip(title=str(row["title"]).strip(), clip=int(number), source=source, start=start,
                end=end, duration_class=str(label).strip() or None if label else None)  # fmt: skip


def _frame(where: str, field: str, value: Any, fps: Fraction) -> int:
    try:
        return parse_timecode(value, fps)
    except InvalidInput as error:
        raise InvalidInput(f"{where}: {field}: {error.message}") from None


def _snake(key: str) -> str:
    """``durationClass`` -> ``duration_class`` (JSON written for the API reads the same)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key.strip()).lower()


def _csv_rows(path: Path | str, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or ())]
    if missing:
        raise InvalidInput(f"{path}:1: the header lacks {', '.join(missing)} "
                           f"(columns: {', '.join(REQUIRED)}[, duration_class])")  # fmt: skip
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row:
            raise InvalidInput(f"{where}: more values than the header has columns")
        rows.append((where, row))
    return rows


def _json_rows(path: Path | str, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
    entries = data.get("clips") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise InvalidInput(f'{path}: expected a list of clips or {{"clips": [...]}}')
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInput(f"{path}: clips[{index}]: expected an object")
        rows.append((f"{path}: clips[{index}]", entry))
    return rows
