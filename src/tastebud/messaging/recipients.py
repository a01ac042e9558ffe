"""What a template knows about one recipient: the user's fields, the item's, their top
recommendations, and the signed links (unsubscribe, click redirect)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tastebud.errors import TastebudError
from tastebud.messaging.spec import MessageSpec
from tastebud.messaging.tokens import TokenSigner, TrackingToken
from tastebud.serving.service import Recommender
from tastebud.store import Store

_log = logging.getLogger(__name__)


class Recipients:
    """Builds template contexts (and the model's facts) for a message's recipients."""

    def __init__(
        self, store: Store, recommender: Recommender, signer: TokenSigner, public_url: str
    ) -> None:
        self.store = store
        self.recommender = recommender
        self.signer = signer
        self.public_url = public_url.rstrip("/")

    def link(self, kind: str, token: TrackingToken) -> str:
        suffix = ".gif" if kind == "open" else ""
        return f"{self.public_url}/v1/track/{kind}/{self.signer.sign(token)}{suffix}"

    def profile(self, group: str, user_id: str) -> dict[str, Any]:
        record = self.store.get_user(group, user_id)
        return {**(dict(record.fields) if record else {}), "id": user_id}

    def context(
        self, group: str, name: str, spec: MessageSpec, token: TrackingToken
    ) -> dict[str, Any]:
        track: Callable[[str], str] = lambda url: self.link("click", token.for_link(str(url)))  # noqa: E731
        return {
            "user": self.profile(group, token.user_id),
            "item": self._item(group, spec.item_id),
            "recommendations": self._recommendations(group, spec, token.user_id),
            "unsubscribe_url": self.link("unsubscribe", token),
            "track": track,
            "message": {"name": name, "channel": spec.channel, "treatment": token.treatment},
        }

    def _item(self, group: str, item_id: str | None) -> dict[str, Any]:
        if item_id is None:
            return {}
        record = self.store.get_item(group, item_id)
        return {**(dict(record.fields) if record else {}), "id": item_id}

    def _recommendations(self, group: str, spec: MessageSpec, user_id: str) -> list[dict[str, Any]]:
        if spec.solution is None or spec.recommendations == 0:
            return []
        try:
            answer = self.recommender.recommend(
                group, {"solution": spec.solution}, user_id=user_id, k=spec.recommendations
            )
        except TastebudError as error:  # no version yet: content without recommendations
            _log.warning("recommendations unavailable solution=%s error=%s", spec.solution, error)
            return []
        return [{**self._item(group, r.id), "score": r.score} for r in answer.results]


def facts(context: dict[str, Any], spec: MessageSpec) -> dict[str, Any]:
    """What a language model is told: the content's facts, without the recipient's address
    or the signed links (which would also make every request unique to the cache)."""
    user = {k: v for k, v in context["user"].items() if k != spec.address}
    return {"channel": spec.channel, "user": user, "item": context["item"],
            "recommendations": context["recommendations"]}  # fmt: skip
