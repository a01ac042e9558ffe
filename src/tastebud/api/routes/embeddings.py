"""A solution's item and user vectors, in its stable space (``tastebud.embeddings``).

Readable with an ``admin`` or ``recommend`` token, like recommendations; an ingest-only token
gets 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tastebud.api.deps import EngineDep, require_reader
from tastebud.api.models import EmbeddingsAnswer
from tastebud.embeddings.service import MAX_IDS, MAX_IDS_LENGTH, Kind, Vectors

router = APIRouter(
    prefix="/v1/dataset-groups/{group}/solutions/{name}/embeddings",
    tags=["embeddings"],
    dependencies=[Depends(require_reader)],
)

# A URL over ~64 KB is refused by the HTTP server itself (400): 4,096 characters stay under it
# even when every one is percent-encoded UTF-8 (12 bytes at most).
Ids = Annotated[
    str,
    Query(description=f"Comma-separated ids, at most {MAX_IDS} (and {MAX_IDS_LENGTH:,} "
          "characters).", max_length=MAX_IDS_LENGTH),
]  # fmt: skip
VersionId = Annotated[
    str | None,
    Query(alias="solutionVersionId", description="This version (default: the newest active).",
          max_length=100),
]  # fmt: skip


@router.get("/{kind}")
def embeddings(
    group: str, name: str, kind: Kind, ids: Ids, engine: EngineDep, version_id: VersionId = None
) -> EmbeddingsAnswer:
    """Item or user vectors (``items``, ``users``). A user's vector comes from the user's
    latest events (newer than the model included); dotted with an item's, the model's score."""
    found = engine.embeddings.lookup(group, name, kind, _split(ids), version_id=version_id)
    return _answer(found)


def _split(ids: str) -> list[str]:
    return [part.strip() for part in ids.split(",") if part.strip()]


def _answer(found: Vectors) -> EmbeddingsAnswer:
    rows = found.vectors.tolist()
    return {
        "solutionVersionId": found.version_id,
        "spaceId": found.space_id,
        "dimensions": int(found.vectors.shape[1]),
        "embeddings": [{"id": i, "vector": v} for i, v in zip(found.ids, rows, strict=True)],
    }
