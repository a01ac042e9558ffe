"""Training inputs: files and store frames -> :class:`~tastebud.recipes.TrainingData`."""

from __future__ import annotations

from tastebud.training.data import (
    SolutionDataConfig,
    build_training_data,
    categorical_columns,
    impression_negatives,
    item_creation_times,
    item_feature_matrix,
    read_table,
    training_data_from_indexed,
)

__all__ = [
    "SolutionDataConfig",
    "build_training_data",
    "categorical_columns",
    "impression_negatives",
    "item_creation_times",
    "item_feature_matrix",
    "read_table",
    "training_data_from_indexed",
]
