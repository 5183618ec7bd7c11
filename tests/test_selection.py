"""export --select: every candidate built, validated and timed; the best one that passes becomes the default."""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error, run_cli
from edgedistill.selection_rank import Candidate, rank


def _c(name, latency, size, passed=True, spread=0.0):
    return Candidate(name, "f", "q", passed=passed, status="pass" if passed else "fail", latency_ms=latency,
                     size_bytes=size, latency_spread=spread)


def test_a_faster_candidate_that_fails_tolerance_is_never_chosen():
    ranked = rank([_c("b-slow", 2.0, 900), _c("a-fast-but-wrong", 0.5, 100, passed=False)], "fastest")
    assert ranked[0].name == "b-slow" and ranked[-1].name == "a-fast-but-wrong"
    assert rank([_c("a-fast-but-wrong", 0.5, 100, passed=False)], "fastest")[0].passed is False


def test_latencies_within_noise_tie_and_go_to_the_smaller_file_then_the_name():
    # 1.00 vs 1.05 ms is inside the 10 % band: the smaller file wins, whichever timing came out lower
    for first, second in ((1.00, 1.05), (1.05, 1.00)):
        assert rank([_c("big", first, 2000), _c("small", second, 1000)], "fastest")[0].name == "small"
    assert rank([_c("zeta", 1.0, 1000), _c("alpha", 1.02, 1000)], "fastest")[0].name == "alpha"
    # a measured spread wider than the band widens the tie
    assert rank([_c("big", 1.0, 2000, spread=0.3), _c("small", 1.25, 1000)], "fastest")[0].name == "small"
    # outside the band, speed wins
    assert rank([_c("big", 1.0, 2000), _c("small", 1.5, 1000)], "fastest")[0].name == "big"
    assert rank([_c("big", 1.0, 2000), _c("small", 1.5, 1000)], "smallest")[0].name == "small"


def test_select_needs_a_target(tmp_path):
    proc = run_cli("export", "--student", "s.pt", "--select", "fastest", "--out", tmp_path)
    assert_one_line_error(proc, "--select needs a --target")


@pytest.mark.slow
def test_select_fastest_on_digits_keeps_a_passing_default(demo_out, tmp_path):
    profile = tmp_path / "board.toml"
    # int8 is planted to fail: no int8 artifact can be bit-exact with the fp32 student
    profile.write_text('name = "board"\ndynamic_batch = false\n'
                       '[[artifacts]]\nformat = "executorch"\nquantization = "fp32"\n'
                       '[[candidates]]\nformat = "executorch"\nquantization = "int8"\n'
                       '[[candidates]]\nformat = "onnx"\nquantization = "fp32"\n'
                       '[tolerances.int8]\nmin_student_top1 = 1.0\nmax_student_abs_dp = 0.0\n')
    ckpt = ["--teacher", demo_out / "teacher.pt", "--student", demo_out / "student.pt"]
    proc = run_cli("export", *ckpt, "--target", profile, "--select", "fastest", "--out", tmp_path / "o",
                   "--set", "validate.measure_memory=false", "--set", "validate.latency_samples=10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selection = json.loads((tmp_path / "o" / "selection.json").read_text())
    by_name = {c["name"]: c for c in selection["candidates"]}
    assert set(by_name) == {"student-executorch-fp32", "student-executorch-int8", "student-onnx-fp32"}
    assert by_name["student-executorch-int8"]["status"] == "fail" and not by_name["student-executorch-int8"]["passed"]
    winner = by_name[selection["default"]]
    assert winner["passed"] and winner["latency_ms"] > 0 and selection["candidates"][0]["name"] == winner["name"]
    assert selection["rule"] and selection["machine"]["cpu"] and selection["machine"]["threads"] == 1
    default = tmp_path / "o" / "bundles" / "default"
    manifest = json.loads((default / "manifest.json").read_text())
    assert (default / "SELECTED").read_text().strip() == winner["name"]
    assert manifest["format"] == winner["format"] and manifest["max_batch"] == 1  # static batch-1 device program
    assert "| 1 | " + winner["name"] in (tmp_path / "o" / "selection.md").read_text()
