"""``ranker``: a learned ranker — LightGBM LambdaMART over other recipes' scores and point-in-time
features (issue 15).

- config (``config.py``): the stacked bases, candidates per base, label grades, LightGBM's knobs;
- candidates (``candidates.py``): each base's top-N of the items a user may be shown, unioned;
- features (``features.py``): per (query, candidate) pair, vectorized and point in time;
- stacking (``stacking.py``): held-out labels, bases fitted before them, LambdaMART;
- recipe (``recipe.py``): ``fit``/``load`` and the model that scores (``score``, ``score_items``).

The trees are LightGBM's own text model; bases are saved by their own recipes in ``bases/``.
"""

from __future__ import annotations

from tastebud.recipes.ranker.config import DEFAULT_BASES, BaseSpec, RankerConfig
from tastebud.recipes.ranker.recipe import Ranker, RankerModel

__all__ = ["DEFAULT_BASES", "BaseSpec", "Ranker", "RankerConfig", "RankerModel"]
