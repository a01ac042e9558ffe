"""A served app (owning its engine) exempts its start-up objects from the cyclic collector."""

from __future__ import annotations

import gc
from pathlib import Path

from tastebud.api.app import create_app
from tastebud.engine import Engine
from tastebud.settings import ApiSettings, Settings

from .conftest import TestClient


def test_start_up_objects_are_frozen_while_serving_only(tmp_path: Path) -> None:
    gc.unfreeze()
    app = create_app(Settings(home=tmp_path, api=ApiSettings(admin_token="t0ken")))
    with TestClient(app) as http:
        assert gc.get_freeze_count() > 10_000  # modules, routes, the engine …
        assert http.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0  # stopped: the collector is as it was


def test_an_embedded_app_leaves_the_collector_alone(tmp_path: Path) -> None:
    gc.unfreeze()
    settings = Settings(home=tmp_path)
    with Engine(settings) as engine, TestClient(create_app(settings, engine=engine)) as http:
        assert http.get("/health").status_code == 200
        assert gc.get_freeze_count() == 0
