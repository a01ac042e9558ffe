"""Uploaded import files: streamed to ``home/uploads`` as they arrive, never held in memory."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import anyio
from fastapi import Request

from tastebud.errors import InvalidInput
from tastebud.jobs.imports import SUFFIXES

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def upload_path(folder: Path, filename: str) -> Path:
    """A fresh path in ``folder`` that keeps the (sanitized) name and so the file type."""
    name = _UNSAFE.sub("_", Path(filename).name)[-100:]
    if not name.lower().endswith(SUFFIXES):
        raise InvalidInput(
            f"filename: {filename!r}: the name must end with {', '.join(SUFFIXES)} "
            "(it tells the file type)"
        )
    return folder / f"{uuid.uuid4().hex[:12]}-{name}"


async def save_upload(request: Request, path: Path) -> int:
    """Write the request body to ``path``; returns its size. Removes the file on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        async with await anyio.open_file(path, "wb") as out:
            async for chunk in request.stream():
                if chunk:
                    await out.write(chunk)
                    size += len(chunk)
        if size == 0:
            raise InvalidInput("request body: the uploaded file is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size
