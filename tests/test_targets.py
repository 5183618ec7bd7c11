"""Target profiles: every shipped profile is valid and ships in the wheel; --target builds what it lists."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, assert_one_line_error, run_cli
from edgedistill import formats
from edgedistill.config import load_config
from edgedistill.target_profiles import builtin_names, load_profile


@pytest.mark.parametrize("name", builtin_names())
def test_shipped_profiles_are_valid(name):
    profile = load_profile(name)  # every artifact names a registered format and a scheme it supports
    assert profile.name == name and profile.artifacts
    names = [a.bundle_name for a in profile.artifacts]
    assert len(names) == len(set(names)), "two artifacts of one profile would overwrite each other's bundle"
    for spec in profile.artifacts:
        assert spec.quantization in formats.get(spec.format).SCHEMES


def test_the_three_device_classes_ship():
    assert {"ios", "android", "linux-arm64"} <= set(builtin_names())
    android = {(a.format, a.quantization) for a in load_profile("android").artifacts}
    assert {("executorch", "fp32"), ("executorch", "int8"), ("litert", "int8")} <= android


def test_profile_tolerances_sit_between_defaults_and_user(tmp_path):
    base = load_config(None, {"export.target": "ios"})
    assert base.validate_.tolerances["fp16"].max_student_abs_dp == 0.02        # from the profile
    mine = load_config(None, {"export.target": "ios", "validate.tolerances.fp16.max_student_abs_dp": 0.05})
    assert mine.validate_.tolerances["fp16"].max_student_abs_dp == 0.05        # the user's wins
    assert mine.validate_.tolerances["fp16"].min_teacher_top1 == 0.90          # the rest stays


def test_profiles_ship_in_the_wheel(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("edgedistill-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for profile in builtin_names():
        assert f"edgedistill/targets/{profile}.toml" in names


def test_unknown_target_lists_what_exists(tmp_path):
    proc = run_cli("export", "--student", "s.pt", "--target", "blackberry", "--out", tmp_path)
    assert_one_line_error(proc, "unknown target 'blackberry'", "android", "ios", "linux-arm64")


def test_own_profile_with_unsupported_scheme(tmp_path):
    profile = tmp_path / "board.toml"
    profile.write_text('name = "board"\n[[artifacts]]\nformat = "onnx"\nquantization = "palettize4"\n')
    proc = run_cli("export", "--student", "s.pt", "--target", profile, "--out", tmp_path / "o")
    assert_one_line_error(proc, "onnx", "palettize4")


@pytest.mark.slow
def test_export_target_android_then_validate(demo_out, tmp_path):
    ckpt = ["--teacher", demo_out / "teacher.pt", "--student", demo_out / "student.pt"]
    proc = run_cli("export", *ckpt, "--target", "android", "--out", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = sorted(p.name for p in (tmp_path / "bundles").iterdir())
    assert built == sorted(a.bundle_name for a in load_profile("android").artifacts)
    proc = run_cli("validate", *sorted((tmp_path / "bundles").iterdir()), *ckpt, "--target", "android",
                   "--set", "validate.measure_memory=false", "--set", "validate.latency_samples=20", "--out", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and len(report["rows"]) == 2 + len(built)
