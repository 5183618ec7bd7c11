"""Bad input: one line on stderr, exit 2, no traceback, and nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, assert_one_line_error, run_cli


def _written(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []


def test_help_does_not_import_torch():
    code = ("import sys\nfrom edgedistill.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "for verb in ('demo', 'distill', 'export', 'validate', 'targets'):\n"
            "    try:\n        main([verb, '--help'])\n    except SystemExit:\n        pass\n"
            "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "usage: edgedistill" in proc.stdout
    assert proc.stdout.strip().endswith("NO_TORCH"), proc.stdout[-300:]


def test_unknown_config_key_is_named(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[distill]\ntemprature = 3\n")
    assert_one_line_error(run_cli("distill", "--config", cfg, "--out", tmp_path / "o"), "unknown key 'distill.temprature'")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--set", "validate.tolerances.int8.max_student_abs_dp=1.5"], "max_student_abs_dp"),
    (["--set", "validate.tolerances.fp32.min_teacher_top1=-0.1"], "min_teacher_top1"),
    (["--set", "distill.alpha=2"], "distill.alpha"),
])
def test_out_of_range_values(tmp_path, args, fragment):
    assert_one_line_error(run_cli("demo", "--out", tmp_path / "o", *args), fragment)
    assert not (tmp_path / "o").exists()


def test_validate_tolerance_flag_out_of_range(tmp_path):
    assert_one_line_error(run_cli("validate", tmp_path, "--max-student-dp", "3", "--dry-run"), "[0, 1]")


def test_missing_checkpoint(tmp_path):
    proc = run_cli("export", "--student", tmp_path / "nope.pt", "--out", tmp_path / "o")
    assert_one_line_error(proc, "checkpoint not found", "nope.pt")
    assert _written(tmp_path / "o") == []


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "student.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a torch zip archive")
    assert_one_line_error(run_cli("export", "--student", bad, "--out", tmp_path / "o"), "corrupt", "student.pt")
    assert bad.read_bytes().startswith(b"PK\x03\x04 this"), "the user's file must not be touched"


def test_pickled_module_is_refused_not_executed(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # a full pickle: would run code under weights_only=False
    assert_one_line_error(run_cli("export", "--student", path, "--out", tmp_path / "o"), "module.pt")


def test_factory_that_does_not_import(tmp_path):
    proc = run_cli("distill", "--student", "no_such_pkg.models:small", "--out", tmp_path / "o")
    assert_one_line_error(proc, "no_such_pkg.models:small", "does not import")
    proc = run_cli("distill", "--student", "edgedistill.zoo.digits:nothing_here", "--out", tmp_path / "o")
    assert_one_line_error(proc, "nothing_here")


def test_npz_without_x(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, features=np.zeros((10, 64), np.float32), y=np.zeros(10, np.int64))
    assert_one_line_error(run_cli("distill", "--data", data, "--out", tmp_path / "o"), "no array 'x'", "features")
    assert not (tmp_path / "o" / "student.pt").exists()


def test_class_count_mismatch_found_before_training(tmp_path):
    proc = run_cli("distill", "--set", "student.kwargs.num_classes=5", "--out", tmp_path / "o")
    assert_one_line_error(proc, "teacher has 10 classes but student has 5")
    assert not (tmp_path / "o" / "teacher.pt").exists() and not (tmp_path / "o" / "student.pt").exists()


def test_unknown_format_lists_available(tmp_path, demo_out):
    proc = run_cli("export", "--student", demo_out / "student.pt", "--format", "tensorflowjs", "--out", tmp_path / "o")
    assert_one_line_error(proc, "unknown format 'tensorflowjs'", "executorch")
    assert _written(tmp_path / "o") == []


def test_usage_error_is_one_line():
    proc = run_cli("distill", "--epochs", "many")
    assert_one_line_error(proc, "--epochs")
