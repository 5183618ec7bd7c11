"""The teacher cache is built once, reused without running the teacher, and rebuilt when anything changed."""

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.data import Dataset
from edgedistill.distillation.losses import TopK
from edgedistill.distillation.teacher_cache import cached_teacher_outputs
from edgedistill.errors import UserError


def _counting(model: nn.Module) -> list[int]:
    """Count forward calls (each batch the teacher computes is one call)."""
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture()
def setup(tmp_path):
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5))
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    return teacher, Dataset({"x": x}, name="points"), tmp_path / "cache"


def test_second_run_reuses_the_cache_without_calling_the_teacher(setup):
    teacher, data, cache = setup
    calls = _counting(teacher)
    first = cached_teacher_outputs(teacher, data, cache, batch_size=128)
    assert first.rebuilt and calls[0] >= 3  # 300 samples in batches of 128
    with torch.no_grad():
        expected = teacher(torch.from_numpy(data.x))
    assert first.arrays["logits"].dtype == np.float16 and isinstance(first.arrays["logits"], np.memmap)
    idx = torch.tensor([3, 0, 299])
    assert torch.allclose(first[idx], expected[idx], atol=2e-3, rtol=2e-3)

    calls[0] = 0
    second = cached_teacher_outputs(teacher, data, cache, batch_size=128)
    assert calls[0] == 0 and not second.rebuilt
    assert torch.equal(second[idx], first[idx])


def test_changed_teacher_weight_or_input_rebuilds(setup):
    teacher, data, cache = setup
    cached_teacher_outputs(teacher, data, cache)
    calls = _counting(teacher)
    with torch.no_grad():
        teacher[2].bias[1] += 3.0  # one teacher weight
    again = cached_teacher_outputs(teacher, data, cache)
    assert again.rebuilt and calls[0] > 0
    with torch.no_grad():
        assert torch.allclose(again[torch.arange(4)], teacher(torch.from_numpy(data.x[:4])), atol=5e-3, rtol=2e-3)

    changed = Dataset({"x": data.x.copy()}, name=data.name)
    changed.inputs["x"][7, 2] += 1.0  # one input value
    assert cached_teacher_outputs(teacher, changed, cache).rebuilt
    assert not cached_teacher_outputs(teacher, changed, cache).rebuilt
    relabelled = Dataset({"x": changed.x}, preprocessing={"scale": 2.0}, name=data.name)
    assert cached_teacher_outputs(teacher, relabelled, cache).rebuilt  # preprocessing is part of the key


def test_damaged_cache_is_rebuilt_not_used(setup):
    teacher, data, cache = setup
    built = cached_teacher_outputs(teacher, data, cache)
    logits_file = built.path / "logits.npy"
    del built
    logits_file.write_bytes(logits_file.read_bytes()[:200])  # truncated on disk
    again = cached_teacher_outputs(teacher, data, cache)
    assert again.rebuilt and again.arrays["logits"].shape == (300, 5)


def test_many_classes_store_top_k_values_and_indices(tmp_path):
    torch.manual_seed(0)
    teacher = nn.Linear(8, 1500)
    data = Dataset({"x": np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)}, name="wide")
    cached = cached_teacher_outputs(teacher, data, tmp_path, top_k=20)
    assert set(cached.arrays) == {"values", "indices"} and cached.num_classes == 1500
    assert cached.arrays["values"].shape == (40, 20) and cached.arrays["values"].dtype == np.float16
    got = cached[torch.arange(40)]
    assert isinstance(got, TopK)
    with torch.no_grad():
        values, indices = torch.topk(teacher(torch.from_numpy(data.x)), 20, dim=1)
    assert torch.equal(got.indices, indices)
    assert torch.allclose(got.values, values, atol=2e-3, rtol=2e-3)
    assert torch.equal(got.argmax(1), indices[:, 0])


def test_random_augmentation_is_refused(setup):
    teacher, data, cache = setup
    data.preprocessing = {"augmentation": "random horizontal flip"}
    with pytest.raises(UserError, match="random augmentation.*teacher_cache = 'off'"):
        cached_teacher_outputs(teacher, data, cache)
    assert not cache.exists()
