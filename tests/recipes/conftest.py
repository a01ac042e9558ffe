"""Small generated data with planted answers, shared by the recipe tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tastebud.recipes import TrainingData


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """The test models are tiny: a second thread saves nothing, and on a loaded machine every
    parallel op waits for both threads to be scheduled (a 2 s fit took over a minute)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def clustered(
    *, n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0
) -> TrainingData:
    """Two taste clusters: users ``< n_users/2`` only touch items ``< n_items/2`` (cluster A),
    the rest only cluster-B items. Within a cluster, lower item indexes are more popular.
    Items carry one categorical feature, ``GENRES=a`` or ``GENRES=b``, and a creation time
    (item i created at ``1_000 * i``)."""
    rng = np.random.default_rng(seed)
    half_users, half_items = n_users // 2, n_items // 2
    users, items = [], []
    for user in range(n_users):
        offset = 0 if user < half_users else half_items
        popularity = 1.0 / np.arange(1, half_items + 1)
        popularity /= popularity.sum()
        chosen = rng.choice(half_items, size=per_user, replace=False, p=popularity)
        users += [user] * per_user
        items += list(offset + chosen)
    n = len(users)
    order = np.arange(n)
    genre = np.array([0] * half_items + [1] * (n_items - half_items))
    features = sp.csr_matrix(
        (np.ones(n_items, np.float32), (np.arange(n_items), genre)), shape=(n_items, 2)
    )
    return TrainingData(
        users=np.asarray(users, np.int32),
        items=np.asarray(items, np.int32),
        timestamps=(1_000_000 + order).astype(np.int64),
        weights=np.ones(n, np.float32),
        n_users=n_users,
        n_items=n_items,
        item_features=features,
        feature_names=("GENRES=a", "GENRES=b"),
        item_created=(np.arange(n_items) * 1_000).astype(np.int64),
    )


@pytest.fixture
def clustered_data() -> TrainingData:
    return clustered()
