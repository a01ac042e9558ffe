"""``personalized-ranking``: put a given list of items in this user's order.

The model is ``user-personalization``'s (same configuration, same scores for every item); the
recipe exists so that a solution can be declared for re-ranking. Serving reads the candidates'
columns from :meth:`UserPersonalizationModel.score` and sorts them.
"""

from __future__ import annotations

from typing import ClassVar

from tastebud.recipes.user_personalization import UserPersonalization


class PersonalizedRanking(UserPersonalization):
    """The ``personalized-ranking`` recipe: ``user-personalization`` under another name."""

    name: ClassVar[str] = "personalized-ranking"
