"""Segments of users computed from a trained model (``tastebud segments``)."""

from tastebud.segments.intents import IntentCluster, IntentSegments, intent_segments, kmeans

__all__ = ["IntentCluster", "IntentSegments", "intent_segments", "kmeans"]
