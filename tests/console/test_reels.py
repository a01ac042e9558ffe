"""The Reels page over a real engine (SQLite and PostgreSQL): a reel composed from a pasted
clip catalogue is the one ``POST …/reels`` composes, shown as its ranked titles and shots, with
its edit list and timeline to download; a bad row is named."""

from __future__ import annotations

import base64
import json
import re

from tastebud.reels import ReelRequest, parse_catalogue
from tests.console.conftest import HX, Console

CATALOGUE = "title,clip,source,start,end\n" + "".join(
    f"i{title},{clip},/media/i{title}.mp4,{clip * 10},{clip * 10 + 4}\n"
    for title in range(6)
    for clip in range(2)
)


def test_a_reel_composed_from_a_pasted_catalogue(loaded: Console) -> None:
    form = {"solution": "popular", "user_id": "u1", "seconds": "12", "fps": "25",
            "clips": CATALOGUE}  # fmt: skip
    shown = loaded.http.post(loaded.url("reels/compose"), data=form, headers=HX)
    assert shown.status_code == 200, shown.text

    request = ReelRequest(user_id="u1", catalogue=parse_catalogue(CATALOGUE, name="clips"),
                          seconds=12)  # fmt: skip
    expected = loaded.engine.reels.compose(loaded.group, {"solution": "popular"}, request)
    edits = expected.edit_list()
    assert edits["frames"] == 300
    titles = re.findall(r'<tr data-title="([^"]+)">.*?class="num frames">(\d+)<', shown.text,
                        re.S)  # fmt: skip
    assert titles == [(t["title"], str(t["frames"])) for t in edits["titles"]]
    assert f"Title of {edits['titles'][0]['title']}" in shown.text  # the item's TITLE field
    assert shown.text.count('<span class="shot rank-') == len(edits["clips"])
    link = re.search(r'download="reel-u1.json" href="data:application/json;base64,([^"]+)"',
                     shown.text)  # fmt: skip
    assert link is not None
    downloaded = json.loads(base64.b64decode(link.group(1)))
    assert downloaded["clips"] == edits["clips"]
    timeline = re.search(r'download="reel-u1.otio" href="data:application/json;base64,([^"]+)"',
                         shown.text)  # fmt: skip
    assert timeline is not None
    assert json.loads(base64.b64decode(timeline.group(1)))["OTIO_SCHEMA"].startswith("Timeline")


def test_a_bad_catalogue_or_user_is_named(loaded: Console) -> None:
    form = {"solution": "popular", "user_id": "u1", "seconds": "12",
            "clips": CATALOGUE + "i9,0,/media/i9.mp4,8,2\n"}  # fmt: skip
    bad = loaded.http.post(loaded.url("reels/compose"), data=form, headers=HX)
    assert bad.status_code == 422 and "clips:14: end: &#39;2&#39; is not after start" in bad.text
    unknown = loaded.http.post(loaded.url("reels/compose"), headers=HX,
                               data=form | {"user_id": "nobody", "clips": CATALOGUE})  # fmt: skip
    assert unknown.status_code == 404 and "nobody" in unknown.text
    empty = loaded.http.post(loaded.url("reels/compose"), headers=HX,
                             data=form | {"clips": " "})  # fmt: skip
    assert empty.status_code == 422 and "clips: paste the clip catalogue" in empty.text
    as_json = json.dumps([{"title": "i1", "clip": 0, "source": "a.mp4", "start": 0, "end": 3}])
    short = loaded.http.post(loaded.url("reels/compose"), headers=HX,
                             data=form | {"clips": as_json})  # fmt: skip
    assert short.status_code == 422 and "seconds: the clips can fill" in short.text
    many = "title,clip,source,start,end\n" + "".join(
        f"i{n % 40},{n},a.mp4,0,1\n" for n in range(5001)
    )
    too_many = loaded.http.post(loaded.url("reels/compose"), headers=HX,
                                data=form | {"clips": many})  # fmt: skip
    assert too_many.status_code == 413 and "5001 clips, at most 5000" in too_many.text
