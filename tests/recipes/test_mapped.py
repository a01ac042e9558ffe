"""Model arrays memory-mapped from their artifact: equal to what was saved, shared, read-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastebud.recipes.mapped import MAP_FROM_BYTES, derived_array, read_npz

LARGE = MAP_FROM_BYTES // 4 + 1  # float32 values: just over the size that gets mapped


def test_large_arrays_are_mapped_small_ones_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    saved = {
        "rows": rng.standard_normal((LARGE // 64 + 1, 64)).astype(np.float32),
        "columns": np.asfortranarray(rng.standard_normal((64, LARGE // 64 + 1))),
        "counts": np.arange(10, dtype=np.int64),
        "scalar": np.array(3.5),
    }
    np.savez(tmp_path / "arrays.npz", **saved)  # type: ignore[arg-type]
    loaded = read_npz(tmp_path / "arrays.npz")
    assert loaded.keys() == saved.keys()
    for name, array in saved.items():
        assert np.array_equal(loaded[name], array) and loaded[name].dtype == array.dtype
    for name in ("rows", "columns"):
        assert isinstance(loaded[name].base, np.memmap), name  # pages of the file, not a copy
        assert not loaded[name].flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            loaded[name][0, 0] = 1.0
    assert loaded["columns"].flags.f_contiguous
    assert loaded["counts"].flags.writeable  # small: read into memory


def test_compressed_archives_are_read(tmp_path: Path) -> None:
    values = np.arange(LARGE, dtype=np.float32)
    np.savez_compressed(tmp_path / "arrays.npz", values=values)
    loaded = read_npz(tmp_path / "arrays.npz")["values"]
    assert np.array_equal(loaded, values) and not isinstance(loaded.base, np.memmap)


def test_derived_arrays_are_made_once_and_mapped(tmp_path: Path) -> None:
    made: list[int] = []

    def make() -> np.ndarray:
        made.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    first = derived_array(tmp_path, "grid", make)
    second = derived_array(tmp_path, "grid", make)
    assert made == [1]
    assert np.array_equal(first, second) and np.array_equal(second, make())
    assert not second.flags.writeable
    assert sorted(p.name for p in (tmp_path / "derived").iterdir()) == ["grid.npy"]


def test_derived_arrays_without_a_writable_folder_stay_in_memory(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "model"
    not_a_folder.write_text("")  # nothing can be written under it
    array = derived_array(not_a_folder, "grid", lambda: np.ones(4, np.float32))
    assert np.array_equal(array, np.ones(4)) and array.flags.writeable
