"""Real-time writes: wire models, their validation against schemas, and the group-commit tracker."""

from tastebud.ingest.models import EventIn, ItemIn, PutEventsRequest, UserIn
from tastebud.ingest.tracker import EventTracker

__all__ = ["EventIn", "EventTracker", "ItemIn", "PutEventsRequest", "UserIn"]
