"""``GET /health``: liveness, without a token (for load balancers)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from tastebud.api.models import HealthOut

router = APIRouter(tags=["health"])


@cache
def package_version() -> str:
    try:
        return version("tastebud")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@router.get("/health")
async def health() -> HealthOut:
    return {"status": "ok", "version": package_version()}
