"""Clip catalogues: timecode formats, and each bad row refused with its file, line and field."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from tastebud.errors import InvalidInput
from tastebud.reels import parse_fps, read_catalogue
from tastebud.reels.catalogue import parse_timecode


@pytest.mark.parametrize(
    ("text", "fps", "frame"),
    [("00:00:01:05", "25", 30), ("01:00:00:00", "25", 90_000), ("2.5", "25", 62),
     ("00:01.2", "25", 30), ("00:00:02.04", "25", 51), ("300f", "25", 300), ("1", "30000/1001", 30),
     ("00:00:01:29", "30000/1001", 59)],
)  # fmt: skip
def test_timecodes_become_frames(text: str, fps: str, frame: int) -> None:
    assert parse_timecode(text, parse_fps(fps)) == frame


@pytest.mark.parametrize("text", ["1:2:3:4:5", "00:00:01;00", "abc", "00:00:01:25", "-1"])
def test_unknown_timecodes_are_refused_with_the_formats(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"timecode|does not exist"):
        parse_timecode(text, Fraction(25))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_csv_catalogue_reads_frames_and_resolves_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "clips.csv", "title,clip,source,start,end,duration_class\n"
                 "t1,1,a.mp4,00:00:01:00,00:00:02:10,short\nt1,0,/x/b.mp4,0,1.5,\n")  # fmt: skip
    catalogue = read_catalogue(path)
    first, second = catalogue.clips
    assert (first.start, first.end, first.frames, first.duration_class) == (25, 60, 35, "short")
    assert first.source == str(tmp_path / "a.mp4") and second.source == "/x/b.mp4"
    assert [c.clip for c in catalogue.by_title()["t1"]] == [0, 1]  # clip-number order


def test_a_json_catalogue_takes_the_api_field_names(tmp_path: Path) -> None:
    clips = [{"title": "t", "clip": 0, "source": "s.mp4", "start": 1, "end": "50f",
              "durationClass": "long"}]  # fmt: skip
    catalogue = read_catalogue(write(tmp_path, "c.json", json.dumps({"clips": clips})))
    assert catalogue.clips[0].frames == 25 and catalogue.clips[0].duration_class == "long"


@pytest.mark.parametrize(
    ("row", "message"),
    [("t,0,a.mp4,00:00:02:00,00:00:01:00", r"clips.csv:3: end: '00:00:01:00' is not after start"),
     ("t,0,a.mp4,5,5", r"clips.csv:3: end: '5' is not after start"),
     ("t,0,a.mp4,1 sec,5", r"clips.csv:3: start: '1 sec' is not a timecode; use HH:MM:SS:FF"),
     ("t,x,a.mp4,1,5", r"clips.csv:3: clip: expected a clip number"),
     (",0,a.mp4,1,5", r"clips.csv:3: title: missing"),
     ("t,1,a.mp4,1,5", r"clips.csv:3: clip 1 of 't' is also at .*clips.csv:2"),
     ("t,0,a.mp4,1,5,short,extra", r"clips.csv:3: more values than the header")],
)  # fmt: skip
def test_a_bad_row_names_file_line_and_field(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, "clips.csv", f"title,clip,source,start,end\nt,1,a.mp4,0,1\n{row}\n")
    with pytest.raises(InvalidInput, match=message):
        read_catalogue(path)


def test_a_bad_json_entry_is_named_by_index(tmp_path: Path) -> None:
    clip = {"title": "t", "clip": 0, "source": "s", "start": 0, "end": 1}
    clips = [clip, clip | {"clip": 1, "speed": 2}]
    with pytest.raises(InvalidInput, match=r"c.json: clips\[1\]: unknown field 'speed'"):
        read_catalogue(write(tmp_path, "c.json", json.dumps(clips)))


def test_headers_formats_and_rates_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="the header lacks end"):
        read_catalogue(write(tmp_path, "h.csv", "title,clip,source,start\n"))
    with pytest.raises(InvalidInput, match=r"\.csv or \.json"):
        read_catalogue(write(tmp_path, "c.txt", "x"))
    with pytest.raises(InvalidInput, match="fps"):
        parse_fps("fast")
