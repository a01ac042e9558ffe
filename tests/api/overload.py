"""Helpers for the overload tests: a route that holds its slot, and the refusal counter."""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI
from prometheus_client import REGISTRY


def add_slow_route(app: FastAPI) -> threading.Event:
    """``GET /slow`` on ``app``, answered only once the returned event is set."""
    release = threading.Event()

    async def slow() -> dict[str, bool]:
        while not release.is_set():
            await asyncio.sleep(0.01)
        return {"done": True}

    app.add_api_route("/slow", slow)
    return release


def rejections(reason: str) -> float:
    """Requests refused for ``reason`` so far in this process."""
    value = REGISTRY.get_sample_value("tastebud_overload_rejections_total", {"reason": reason})
    return value or 0.0
