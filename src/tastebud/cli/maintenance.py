"""Maintenance commands: backup, restore, doctor (docs/operations.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tastebud.cli._common import console, die, fail_cleanly, print_json, state
from tastebud.maintenance import backup as make_backup
from tastebud.maintenance import check_archive, diagnose, manifest_summary
from tastebud.maintenance import restore as restore_archive

_MARK = {"ok": "[green]  ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The archive to write (.tar, or .tar.gz).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Back up the store, every solution version's artifact and the home's key files into one
    archive, while the server keeps serving (SQLite's backup API; pg_dump for PostgreSQL)."""
    with fail_cleanly():
        result = make_backup(state(ctx).settings(), file)
    summary = manifest_summary(result.manifest) | {
        "path": str(result.path), "seconds": round(result.seconds, 2),
        "missing_artifacts": result.missing_artifacts,
    }  # fmt: skip
    if as_json:
        print_json(summary)
        return
    interactions = result.manifest.tables.get("interactions", 0)
    console.print(
        f"backed up {result.manifest.store} store to {escape(str(file))}: "
        f"{interactions:,} interactions, {summary['solution_versions']} solution "
        f"versions, {summary['bytes'] / 2**20:,.1f} MiB in {result.seconds:.1f} s"
    )
    for version in result.missing_artifacts:
        console.print(f"[yellow]warning:[/] active version {version} has no artifact folder")


def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An archive made by tastebud backup.")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace the store without asking.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replace the store with an archive's (stop servers and workers first). The archive is
    checked and loaded in a new place first; what it replaces is kept aside."""
    settings = state(ctx).settings()
    with fail_cleanly():
        manifest = check_archive(settings, file)
        if not yes:
            typer.confirm(
                f"replace the store ({settings.store_url.rpartition('@')[2]}) and its artifacts "
                f"with the backup of {manifest.created_at} "
                f"({manifest.tables.get('interactions', 0):,} interactions)?",
                abort=True,
            )
        result = restore_archive(settings, file)
    if as_json:
        print_json(manifest_summary(result.manifest) | {
            "seconds": round(result.seconds, 2), "previous": result.previous})  # fmt: skip
        return
    console.print(f"restored {escape(str(file))} ({result.manifest.created_at}) in "
                  f"{result.seconds:.1f} s")  # fmt: skip
    for kept in result.previous:
        console.print(f"the replaced store is kept in {escape(kept)}: delete it once you are "
                      "satisfied")  # fmt: skip


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check the configuration, store, Redis and NATS, disk space and artifacts; say what is
    wrong and how to fix it. Exits 1 when a check fails (warnings alone exit 0)."""
    checks = diagnose(state(ctx).settings)
    failed = any(check.status == "fail" for check in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [dataclasses.asdict(c) for c in checks]})
    else:
        for check in checks:
            console.print(f"{_MARK[check.status]} {check.name:<13} {escape(check.message)}")
            for detail in check.details:
                console.print(f"{'':19}- {escape(detail)}")
            if check.fix and check.status != "ok":
                console.print(f"{'':19}fix: {escape(check.fix)}")
    if failed and not as_json:
        die("doctor found problems (FAIL above)")
    if failed:
        raise typer.Exit(1)
