"""Data sources and splits."""

from __future__ import annotations

import numpy as np
import pytest

from edgedistill.data import Dataset, load_dataset, split
from edgedistill.errors import UserError


def test_digits_split_is_stratified_disjoint_and_deterministic():
    data = load_dataset("digits")
    a, b = split(data, 0.25, 0.1, seed=3), split(data, 0.25, 0.1, seed=3)
    assert np.array_equal(a.test.x, b.test.x)
    assert len(a.train) + len(a.val) + len(a.test) == len(data)
    counts = np.bincount(a.test.y, minlength=10)
    assert counts.min() >= 40  # every class held out in proportion (~45 each)


def test_split_parts_are_disjoint_and_cover_everything():
    ids = np.arange(300, dtype=np.float32)[:, None]  # each sample identifiable by its value
    data = Dataset(inputs={"x": ids}, y=(np.arange(300) % 3).astype(np.int64))
    parts = split(data, 0.2, 0.1, seed=0)
    seen = [set(p.x[:, 0].tolist()) for p in (parts.train, parts.val, parts.test)]
    assert sum(len(s) for s in seen) == 300 and len(set().union(*seen)) == 300
    assert (len(seen[2]), len(seen[1])) == (60, 30)


def test_npz_single_and_multi_input(tmp_path):
    single = tmp_path / "s.npz"
    np.savez(single, x=np.ones((6, 3), np.float64), y=np.arange(6) % 2)
    ds = load_dataset(single)
    assert ds.x.dtype == np.float32 and list(ds.inputs) == ["x"] and ds.y.tolist() == [0, 1, 0, 1, 0, 1]
    multi = tmp_path / "m.npz"
    np.savez(multi, **{"x.input_ids": np.ones((4, 5), np.int32), "x.attention_mask": np.ones((4, 5), np.int32)})
    ds = load_dataset(multi)
    assert list(ds.inputs) == ["input_ids", "attention_mask"] and ds.y is None
    assert ds.inputs["input_ids"].dtype == np.int64


@pytest.mark.parametrize("arrays,fragment", [
    ({"x": np.ones((3, 2)), "y": np.array([0.5, 1, 2])}, "integer labels"),
    ({"x": np.ones((3, 2)), "y": np.array([0, 1])}, "shape (3,)"),
    ({"x": np.ones((0, 2))}, "at least one sample"),
    ({"x.a": np.ones((3, 2)), "x.b": np.ones((4, 2))}, "different numbers of samples"),
])
def test_bad_npz(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=None) as err:
        load_dataset(path)
    assert fragment in str(err.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_text("hello")
    with pytest.raises(UserError, match="not a readable"):
        load_dataset(path)
