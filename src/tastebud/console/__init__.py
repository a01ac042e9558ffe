"""The web console: server-rendered pages over the engine, mounted by the API at ``/console``."""

from tastebud.console.app import create_console
from tastebud.console.routes.data import UPLOAD_PATH
from tastebud.console.session import PREFIX

__all__ = ["PREFIX", "UPLOAD_PATH", "create_console"]
