"""Offline evaluation: splits, metrics, full-ranking scoring, tuning (see DESIGN.md)."""

from __future__ import annotations

from tastebud.evaluation.evaluate import (
    PROTOCOLS,
    EvaluationProtocol,
    evaluate,
    fit_and_evaluate,
    rank_top_k,
    run_evaluation,
    split_data,
)
from tastebud.evaluation.splits import Split, Targets, leave_last_out, time_holdout

__all__ = [
    "PROTOCOLS",
    "EvaluationProtocol",
    "Split",
    "Targets",
    "evaluate",
    "fit_and_evaluate",
    "leave_last_out",
    "rank_top_k",
    "run_evaluation",
    "split_data",
    "time_holdout",
]
