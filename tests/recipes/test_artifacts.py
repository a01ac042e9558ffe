"""Model artifacts: plain arrays and JSON, readable by later versions, refused when too new."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.recipes.base import ARTIFACT_FORMAT, load_arrays, save_arrays


def test_dense_and_sparse_arrays_round_trip(tmp_path: Path) -> None:
    matrix = sp.random(5, 7, density=0.3, format="csr", dtype=np.float32, random_state=1)
    dense = np.arange(6, dtype=np.int32)
    save_arrays(tmp_path / "m", {"alpha": 0.5}, {"neighbours": matrix, "order": dense, "x": None})
    meta, arrays = load_arrays(tmp_path / "m")
    assert meta["alpha"] == 0.5 and meta["format"] == ARTIFACT_FORMAT
    assert (arrays["neighbours"] != matrix).nnz == 0
    assert arrays["neighbours"].dtype == np.float32
    np.testing.assert_array_equal(arrays["order"], dense)
    assert "x" not in arrays


def test_an_artifact_from_a_newer_tastebud_is_refused_clearly(tmp_path: Path) -> None:
    save_arrays(tmp_path / "m", {}, {"a": np.zeros(2)})
    meta_file = tmp_path / "m" / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["format"] = ARTIFACT_FORMAT + 1
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="newer than this tastebud understands"):
        load_arrays(tmp_path / "m")


def test_an_older_format_still_loads(tmp_path: Path) -> None:
    save_arrays(tmp_path / "m", {}, {"a": np.ones(3)})
    meta_file = tmp_path / "m" / "model.json"
    meta = json.loads(meta_file.read_text())
    del meta["format"]  # written before formats were numbered
    meta_file.write_text(json.dumps(meta))
    _, arrays = load_arrays(tmp_path / "m")
    np.testing.assert_array_equal(arrays["a"], np.ones(3))
