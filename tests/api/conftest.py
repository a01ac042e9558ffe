"""API fixtures: the app over the test's engine (SQLite and PostgreSQL), with admin and ingest
tokens, driven in-process by FastAPI's TestClient."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tastebud.api.app import create_app
from tastebud.engine import Engine

# Starlette prefers `httpx2` for its TestClient; plain httpx still works.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from fastapi.testclient import TestClient  # noqa: E402

__all__ = ["Api", "TestClient", "bearer"]


@dataclass
class Api:
    http: TestClient
    engine: Engine
    group: str
    admin: dict[str, str]  # Authorization headers
    ingest: dict[str, str]

    def url(self, suffix: str = "", *, group: str | None = None) -> str:
        """``/v1/dataset-groups/{group}{suffix}`` for the test's group by default."""
        return f"/v1/dataset-groups/{group or self.group}{suffix}"

    def counts(self) -> dict[str, int]:
        response = self.http.get(self.url("/status"), headers=self.admin)
        assert response.status_code == 200, response.text
        counts: dict[str, int] = response.json()["counts"]
        return counts

    def events(self, user_id: str) -> list[dict[str, Any]]:
        response = self.http.get(self.url(f"/users/{user_id}/events"), headers=self.admin)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def wait_for_job(self, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(f"/v1/jobs/{job_id}", headers=self.admin)
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in ("succeeded", "failed"):
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
            time.sleep(0.02)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(engine: Engine, group: str) -> Iterator[Api]:
    """The app over the test's engine; tokens are named after the group (cleaned up with it)."""
    admin = engine.create_token(f"{group}-admin", scope="admin")
    ingest = engine.create_token(f"{group}-ingest", scope="ingest")
    with TestClient(create_app(engine.settings, engine=engine)) as http:
        yield Api(http, engine, group, bearer(admin), bearer(ingest))
