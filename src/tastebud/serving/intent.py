"""The predicted intent of a user's next action, for answers that ask for it (``includeIntent``):
the next event type and the next item's field values, from a model with intent heads."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tastebud.errors import InvalidInput
from tastebud.recipes.base import FloatArray, Query
from tastebud.serving.versions import LoadedVersion

Intent = dict[str, dict[str, float]]  # head ("eventType", "GENRES") -> class -> probability


@runtime_checkable
class IntentModel(Protocol):
    """A model with intent heads (the ``sequential`` recipe trained with ``intent_heads``)."""

    @property
    def has_intent(self) -> bool: ...

    def predict_intent(self, query: Query, top: int = ...) -> list[Intent]: ...

    def intent_vectors(self, query: Query) -> FloatArray: ...


def intent_model(version: LoadedVersion) -> IntentModel:
    """``version``'s model, checked to have intent heads.

    Raises:
        InvalidInput: it has none (another recipe, or trained without ``intent_heads``).
    """
    model = version.model
    if not isinstance(model, IntentModel) or not model.has_intent:
        raise InvalidInput(
            f"solution version {version.id} ({version.recipe}) has no intent heads; train a "
            "sequential solution with intent_heads: true to ask for the intent"
        )
    return model


def predicted_intent(version: LoadedVersion, query: Query) -> Intent:
    """The intent of ``query``'s one user (``{}`` without history)."""
    return intent_model(version).predict_intent(query)[0]
