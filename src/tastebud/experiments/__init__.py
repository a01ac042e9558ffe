"""Experiments (issue 15): A/B tests between campaigns — assignment by a hash of the user,
exposures logged in batches, outcomes attributed from events at report time, lifts with
intervals, sample-ratio checks and CUPED — and metric attributions per recommendation source."""

from tastebud.experiments.assignment import bucket
from tastebud.experiments.metrics import MetricAttributions, parse_expression
from tastebud.experiments.service import ExperimentService
from tastebud.experiments.spec import ExperimentSpec, parse_arm_option, parse_window

__all__ = [
    "ExperimentService",
    "ExperimentSpec",
    "MetricAttributions",
    "bucket",
    "parse_arm_option",
    "parse_expression",
    "parse_window",
]
