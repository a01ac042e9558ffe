"""What every command group shares: settings from the callback, the engine, output, errors."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tastebud.engine import Engine
from tastebud.errors import TastebudError
from tastebud.settings import Settings

console = Console()
errors = Console(stderr=True)


@dataclass
class CliState:
    overrides: dict[str, Any]

    def settings(self) -> Settings:
        return Settings(**self.overrides)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


@contextlib.contextmanager
def engine(ctx: typer.Context, settings: Settings | None = None) -> Iterator[Engine]:
    """An engine on an initialised store (the default group exists); ``settings``: the
    command's own, when it changes some (default: the callback's)."""
    settings = settings or state(ctx).settings()
    with fail_cleanly(), Engine(settings) as eng:
        eng.ensure_group(settings.default_group)
        yield eng


@contextlib.contextmanager
def fail_cleanly() -> Iterator[None]:
    """User mistakes print one readable line and exit 1; no traceback."""
    try:
        yield
    except TastebudError as exc:
        die(exc.message)


def die(message: str, code: int = 1) -> NoReturn:
    # Escaped: messages quote user values and URLs such as redis://host[:port][/db].
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def progress_bar(*, enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        disable=not enabled,
        transient=False,
    )


def group_option() -> Any:
    return typer.Option(None, "--group", "-g", help="Dataset group (default: settings).")


def resolve_group(ctx: typer.Context, group: str | None) -> str:
    return group or state(ctx).settings().default_group


def key_values(values: list[str] | None, option: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; a value without ``=`` is a one-line error."""
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            die(f"{option} {value!r}: expected KEY=VALUE")
        pairs[key.strip()] = rest.strip()
    return pairs


def existing_file(path: Path) -> Path:
    if not path.is_file():
        die(f"{path}: no such file")
    return path
