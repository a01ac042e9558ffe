"""A selection applied to top-k gives the best allowed items, whichever index form it takes."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tastebud.filters import Catalog, Selection
from tastebud.filters.selection import index_form
from tastebud.ids import Vocabulary
from tastebud.serving.recommend import top_k


def brute_force(scores: np.ndarray, k: int, allowed: np.ndarray, excluded: set[int]) -> list[int]:
    ranked = sorted(
        (i for i in range(len(scores))
         if allowed[i] and i not in excluded and np.isfinite(scores[i])),
        key=lambda i: (-scores[i], i),
    )  # fmt: skip
    return ranked[:k]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            arrays(np.float32, n, elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, -np.inf])),
            arrays(np.bool_, n + 3),  # the version's n rows, 2 store-only rows, the empty row
            st.lists(st.integers(0, n + 2), max_size=5),
        )
    ),
    st.integers(1, 10),
    st.lists(st.integers(0, 39), max_size=4),
)
def test_top_k_over_a_selection_matches_brute_force(
    generated: tuple[np.ndarray, np.ndarray, list[int]], k: int, history: list[int]
) -> None:
    scores, allowed, blocked = generated
    n = len(scores)
    ids = [f"i{i}" for i in range(n)]
    frame = pl.DataFrame({"ITEM_ID": [*ids, "x1", "x2"]})
    catalog = Catalog(frame, Vocabulary(ids), id_column="ITEM_ID")
    assert catalog.size == n + 3
    selection = Selection(allowed, np.unique(np.array(blocked, np.int32)), catalog,
                          index_form(allowed))  # fmt: skip
    candidates, excluded = selection.first(n)
    history_rows = np.array([h for h in history if h < n], np.int32)
    got = top_k(scores, k, exclude=np.concatenate([excluded, history_rows]), candidates=candidates)
    best = brute_force(scores, k, allowed, {*blocked, *history_rows.tolist()})
    assert list(scores[got]) == list(scores[best])  # ties at the cut may pick other indexes
    assert all(allowed[i] and i not in blocked and i not in history_rows for i in got)
    permitted = selection.permits([*ids, "x1", "ghost"])
    assert list(permitted[:n]) == [bool(allowed[i]) and i not in blocked for i in range(n)]
    assert permitted[n] == (bool(allowed[n]) and n not in blocked)
    assert permitted[n + 1] == (bool(allowed[n + 2]) and n + 2 not in blocked)  # known nowhere


def test_index_form_takes_the_smaller_side() -> None:
    sparse = np.zeros(10, np.bool_)
    sparse[[2, 7]] = True
    assert index_form(sparse)[0] is True and list(index_form(sparse)[1]) == [2, 7]
    assert index_form(~sparse)[0] is False and list(index_form(~sparse)[1]) == [2, 7]
