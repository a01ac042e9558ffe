"""Serving: trained versions held in memory, answered with exclusion, top-k and fallback."""

from tastebud.serving.live import LiveFeed
from tastebud.serving.recommend import (
    MAX_RESULTS,
    Scored,
    rank_items,
    recommend_items,
    similar_items,
    similar_users,
    top_k,
    users_for_item,
)
from tastebud.serving.service import Answer, Recommender, VersionRef
from tastebud.serving.versions import (
    LoadedVersion,
    VersionCache,
    load_version,
    save_version,
    without_users,
)

__all__ = [
    "MAX_RESULTS",
    "Answer",
    "LiveFeed",
    "LoadedVersion",
    "Recommender",
    "Scored",
    "VersionCache",
    "VersionRef",
    "load_version",
    "rank_items",
    "recommend_items",
    "save_version",
    "similar_items",
    "similar_users",
    "top_k",
    "users_for_item",
    "without_users",
]
