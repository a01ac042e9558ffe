"""Backups, restores, upgrades and ``tastebud doctor`` (docs/operations.md)."""

from __future__ import annotations

from tastebud.maintenance.archive import Manifest, manifest_summary, read_manifest
from tastebud.maintenance.backup import BackupResult, backup
from tastebud.maintenance.doctor import Check, diagnose
from tastebud.maintenance.restore import RestoreResult, check_archive, restore

__all__ = [
    "BackupResult",
    "Check",
    "Manifest",
    "RestoreResult",
    "backup",
    "check_archive",
    "diagnose",
    "manifest_summary",
    "read_manifest",
    "restore",
]
