"""The feature store (issue 15): declared stream, batch and request-time features, online
reads, and point-in-time training frames."""

from tastebud.features.service import FeatureService
from tastebud.features.spec import FeatureSet, parse, parse_text

__all__ = ["FeatureService", "FeatureSet", "parse", "parse_text"]
