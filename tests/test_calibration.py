"""Calibration sets: stratified by the teacher's classes, checked against the model, and they matter."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from conftest import assert_one_line_error, run_cli
from edgedistill.calibrate import stratified_index
from edgedistill.config import load_config
from edgedistill.data import load_dataset
from edgedistill.formats import executorch
from edgedistill.formats.base import run_batched
from edgedistill.modelref import load_model
from edgedistill.quiet import quiet
from edgedistill.stages import load_splits
from edgedistill.validation.metrics import compare


def test_stratified_index_represents_rare_groups():
    groups = np.array([0] * 950 + [1] * 45 + [2] * 5)
    index = stratified_index(groups, 30, seed=0)
    counts = np.bincount(groups[index], minlength=3)
    assert counts[2] == 5  # the rare class is fully in; a uniform draw would expect 0.15 of a sample
    assert abs(int(counts[0]) - int(counts[1])) <= 1  # the rest shared evenly, not by frequency
    assert len(set(index.tolist())) == 30


@pytest.mark.slow
def test_calibrate_cli_writes_set_and_recipe(demo_out, tmp_path):
    proc = run_cli("calibrate", "--teacher", demo_out / "teacher.pt", "--n", "50", "--out", tmp_path, "--name", "cal")
    assert proc.returncode == 0, proc.stderr
    recipe = tomllib.loads((tmp_path / "cal.toml").read_text())
    assert recipe["n"] == 50 and recipe["stratified_by"] == "teacher predicted class"
    assert sum(recipe["class_counts"]) == 50 and min(recipe["class_counts"]) >= 4
    x = load_dataset(tmp_path / "cal.npz").x
    assert x.shape == (50, 64)
    # the set feeds export; a set of the wrong shape is refused before any work
    ok = run_cli("export", "--student", demo_out / "student.pt", "-q", "int8", "--calibration", tmp_path / "cal.npz",
                 "--out", tmp_path / "exp")
    assert ok.returncode == 0, ok.stderr
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((8, 32), np.float32))
    bad = run_cli("export", "--student", demo_out / "student.pt", "-q", "int8", "--calibration", wrong,
                  "--out", tmp_path / "exp2")
    assert_one_line_error(bad, "shape (32,)", "(64,)")
    assert not (tmp_path / "exp2" / "bundles").exists() or not any((tmp_path / "exp2" / "bundles").iterdir())


@pytest.mark.slow
def test_representative_calibration_beats_noise(demo_out, tmp_path):
    student = load_model(str(demo_out / "student.pt"))
    test = load_splits(load_config()).test
    train = load_splits(load_config()).train
    reference = student(torch.as_tensor(test.x)).detach().numpy()
    example = (torch.as_tensor(test.x[:2]),)
    results = {}
    noise = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)  # the usual torch.randn stand-in
    for name, calibration in (("real", train.x[:256]), ("noise", noise)):
        path = tmp_path / f"{name}.pte"
        with quiet():
            executorch.export(student, example, scheme="int8", path=path, calibration={"x": calibration})
            out = run_batched(executorch.load(path, 1024), test.inputs)
        results[name] = compare(reference, out)
    # deterministic (fixed student, seeded noise); on the demo student noise roughly doubles the KL
    assert results["real"]["mean_kl"] * 1.5 < results["noise"]["mean_kl"], results
    assert results["real"]["max_abs_dp"] < results["noise"]["max_abs_dp"], results
