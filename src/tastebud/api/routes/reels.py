"""Personalized reels: a user's ranked titles cut into an edit list and an OTIO timeline.

Readable with an ``admin`` or ``recommend`` token, like recommendations.
"""

from __future__ import annotations

import json
from typing import cast

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_reader
from tastebud.api.models import ReelIn, ReelOut
from tastebud.errors import PayloadTooLarge
from tastebud.reels import ReelRequest, parse_fps
from tastebud.reels.catalogue import catalogue_from_rows
from tastebud.reels.timeline import otio_json
from tastebud.serving import VersionRef

MAX_CLIPS = 5000

router = APIRouter(
    prefix="/v1/dataset-groups/{group}", tags=["reels"], dependencies=[Depends(require_reader)]
)


def check_clip_count(count: int) -> None:
    """Refuse a catalogue of more than :data:`MAX_CLIPS` clips in one request (the console's
    pasted ones too)."""
    if count > MAX_CLIPS:
        raise PayloadTooLarge(f"clips: {count} clips, at most {MAX_CLIPS} per request")


@router.post("/reels")
def compose_reel(group: str, body: ReelIn, engine: EngineDep) -> ReelOut:
    """The reel for ``userId``: the clips' titles ranked for the user (``filterName`` drops
    titles), played in ``cadence`` order for ``seconds``; its edit list and OTIO timeline."""
    check_clip_count(len(body.clips))
    rows = [(f"clips[{i}]", clip.model_dump(exclude_none=True))
            for i, clip in enumerate(body.clips)]  # fmt: skip
    catalogue = catalogue_from_rows(rows, fps=parse_fps(body.fps))
    request = ReelRequest(user_id=body.user_id, catalogue=catalogue, seconds=body.seconds,
                          cadence=body.cadence, filter_name=body.filter,
                          filter_values=body.filter_values)  # fmt: skip
    target: VersionRef = {"solution": body.solution, "version_id": body.solution_version_id}
    reel = engine.reels.compose(group, target, request)
    answer = reel.edit_list() | {"timeline": json.loads(otio_json(reel.plan))}
    return cast(ReelOut, answer)
