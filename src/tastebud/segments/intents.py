"""Users clustered by their intent embedding (the sequential recipe's intent heads), each cluster
described by its members' mean predicted intent (top genres, event types): segments for batch
jobs and messages, in the ``{"userId": …}`` JSON Lines they read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from tastebud.batch.formats import LineRequest
from tastebud.batch.scoring import users_query
from tastebud.errors import InvalidInput
from tastebud.recipes.base import FloatArray, IntArray, history_window
from tastebud.serving import LoadedVersion, Recommender
from tastebud.serving.intent import Intent, intent_model

MAX_CLUSTERS = 256
USERS_PER_READ = 2_000  # users whose latest events are read and encoded at once
TOP_VALUES = 3  # values shown per head in a cluster's description


@dataclass(frozen=True)
class IntentCluster:
    cluster: int
    size: int
    intent: Intent  # head -> its most probable values over the members -> mean probability


@dataclass(frozen=True)
class IntentSegments:
    version_id: str
    clusters: list[IntentCluster]
    users: dict[str, int]  # user id -> cluster
    without_history: int  # users the version knows with no events to read: in no cluster

    def as_dict(self) -> dict[str, Any]:
        return {
            "solutionVersionId": self.version_id,
            "clusters": [
                {"cluster": c.cluster, "size": c.size, "intent": c.intent} for c in self.clusters
            ],
            "users": self.users,
            "withoutHistory": self.without_history,
        }

    def write(self, folder: Path) -> list[Path]:
        """``cluster-N.jsonl`` (one ``{"userId": …}`` a line: a segment that ``tastebud batch
        recommend --input`` and messages read) per cluster, and ``clusters.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        members: dict[int, list[str]] = {c.cluster: [] for c in self.clusters}
        for user, cluster in self.users.items():
            members[cluster].append(user)
        paths = []
        for cluster, users in members.items():
            path = folder / f"cluster-{cluster}.jsonl"
            path.write_text("".join(json.dumps({"userId": u}) + "\n" for u in users))
            paths.append(path)
        summary = self.as_dict()
        del summary["users"]
        (folder / "clusters.json").write_text(json.dumps(summary, indent=1) + "\n")
        return [*paths, folder / "clusters.json"]


def kmeans(vectors: FloatArray, clusters: int, *, seed: int = 0) -> IntArray:
    """Each row's cluster by K-means with k-means++ seeding (the best of 4 starts)."""
    model = KMeans(n_clusters=clusters, init="k-means++", n_init=4, random_state=seed)
    labels: IntArray = model.fit_predict(vectors).astype(np.int32)
    return labels


def intent_segments(
    recommender: Recommender, group: str, version: LoadedVersion, *, clusters: int, seed: int = 0
) -> IntentSegments:
    """Cluster the users ``version`` was trained on by the intent of their latest events.

    Raises:
        InvalidInput: the version has no intent heads; ``clusters`` out of 2..256 or more than
            the users with history.
    """
    intent_model(version)  # fails clearly before any read
    if not 2 <= clusters <= MAX_CLUSTERS:
        raise InvalidInput(f"--clusters must be within 2..{MAX_CLUSTERS} (got {clusters})")
    users, vectors, intents = [], [], []
    for ids, query_vectors, query_intents in _encoded(recommender, group, version):
        known = np.flatnonzero(np.isfinite(query_vectors).all(1))
        users += [ids[i] for i in known]
        vectors.append(query_vectors[known])
        intents += [query_intents[i] for i in known]
    total = sum(1 for user in version.users.ids(range(len(version.users))) if user is not None)
    if len(users) < clusters:
        raise InvalidInput(
            f"{clusters} clusters need at least as many users with events ({len(users)} have)"
        )
    labels = kmeans(np.concatenate(vectors), clusters, seed=seed)
    described = [
        IntentCluster(c, int((labels == c).sum()), _mean_intent([intents[i] for i in
                                                                 np.flatnonzero(labels == c)]))
        for c in range(clusters)
    ]  # fmt: skip
    return IntentSegments(
        version.id, described, dict(zip(users, labels.tolist(), strict=True)), total - len(users)
    )


def _encoded(
    recommender: Recommender, group: str, version: LoadedVersion
) -> Iterator[tuple[list[str], FloatArray, list[Intent]]]:
    """The version's users, a read at a time, with their intent vectors and full intents."""
    model = intent_model(version)
    window = history_window(model, default=recommender.settings.serving.history_length) or 0
    lookup = recommender.item_lookup(group, version)
    ids = [u for u in version.users.ids(range(len(version.users))) if u is not None]
    for low in range(0, len(ids), USERS_PER_READ):
        chunk = ids[low : low + USERS_PER_READ]
        frame = recommender.store.latest_interactions(group, chunk, max(window, 1))
        query = users_query(version, [LineRequest(user_id=u) for u in chunk], frame, lookup)
        yield chunk, model.intent_vectors(query), model.predict_intent(query, top=1_000_000)


def _mean_intent(intents: list[Intent]) -> Intent:
    """Each head's mean probability per value over ``intents``, its top values kept."""
    out: Intent = {}
    for head in intents[0] if intents else {}:
        sums: dict[str, float] = {}
        for intent in intents:
            for value, p in intent[head].items():
                sums[value] = sums.get(value, 0.0) + p
        best = sorted(sums.items(), key=lambda pair: -pair[1])[:TOP_VALUES]
        out[head] = {value: round(total / len(intents), 4) for value, total in best}
    return out
