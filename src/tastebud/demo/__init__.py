"""Demo data: a synthetic streaming service with planted, measurable structure."""

from __future__ import annotations

from tastebud.demo.synthetic import LatentTruth, SyntheticData, generate

__all__ = ["LatentTruth", "SyntheticData", "generate"]
