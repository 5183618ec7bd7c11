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


# --- timed on a device: export --select --device adb, through tests/fake_adb (a folder stands in for the phone) ---

BOARD = ('name = "phone"\n'  # the export default (dynamic batch): one golden run per bundle on the stand-ins
         '[[artifacts]]\nformat = "executorch"\nquantization = "fp32"\n'
         '[[candidates]]\nformat = "executorch"\nquantization = "int8"\n'
         '[[candidates]]\nformat = "onnx"\nquantization = "fp32"\n'
         # int8 is planted to fail (no int8 program is bit-exact with the fp32 student), and is the fastest here
         '[tolerances.int8]\nmin_student_top1 = 1.0\nmax_student_abs_dp = 0.0\n')


def _select_on_phone(demo_out, tmp_path, name: str, **fault):
    from test_device_adb import FAKE, phone_env

    profile = tmp_path / "phone.toml"
    profile.write_text(BOARD)
    out, root = tmp_path / name, tmp_path / f"{name}-phone"
    proc = run_cli("export", "--teacher", demo_out / "teacher.pt", "--student", demo_out / "student.pt",
                   "--target", profile, "--select", "fastest", "--device", "adb", "--out", out,
                   "--runner", FAKE / "runners" / "executor_runner", "--runner", FAKE / "runners" / "onnxruntime_perf_test",
                   "--set", "validate.measure_memory=false", "--set", "validate.latency_samples=10",
                   "--set", "bench.processes=1", "--set", "bench.warmup=2", "--set", "bench.runs=10",
                   env=phone_env(root, **fault), timeout=900)
    return proc, out, root


@pytest.mark.parametrize("fault,words", [("offline", ["adb:FAKE0001", "step preflight", "offline"]),
                                         ("two-devices", ["2 devices attached", "adb:SERIAL"])])
def test_select_on_an_unreachable_phone_fails_in_one_line_before_building(demo_out, tmp_path, fault, words):
    proc, out, _ = _select_on_phone(demo_out, tmp_path, "o", FAKE_ADB_FAULT=fault)
    assert_one_line_error(proc, *words)
    assert not (out / "bundles").exists() and not (out / "selection.json").exists()  # nothing built first


def test_select_on_a_device_needs_a_runner_for_some_candidate(demo_out, tmp_path):
    from test_device_adb import phone_env

    profile = tmp_path / "phone.toml"
    profile.write_text(BOARD)
    select = ("export", "--student", demo_out / "student.pt", "--target", profile, "--select", "fastest",
              "--device", "adb", "--out", tmp_path / "o")
    env = phone_env(tmp_path / "phone")
    assert_one_line_error(run_cli(*select, env=env), "give --runner PATH", "executor_runner", "onnxruntime_perf_test")
    assert_one_line_error(run_cli(*select, "--runner", tmp_path / "my_runner", env=env), "runner not found", "my_runner")
    (tmp_path / "my_runner").write_text("#!/bin/sh\n")
    assert_one_line_error(run_cli(*select, "--runner", tmp_path / "my_runner", env=env),
                          "cannot tell which runner my_runner is")
    assert not (tmp_path / "o" / "bundles").exists()


# one run in the default suite (~1-2 min: exports, validation and six stand-in runner processes); the
# reproducibility check runs the whole selection twice and is heavy
@pytest.mark.parametrize("runs", [pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.heavy)])
def test_select_fastest_timed_on_a_phone_picks_the_same_passing_winner_twice(demo_out, tmp_path, runs):
    winners = []
    for name in ("first", "second")[:runs]:
        proc, out, root = _select_on_phone(demo_out, tmp_path, name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        selection = json.loads((out / "selection.json").read_text())
        bench = json.loads((out / "selection-bench" / "bench.json").read_text())
        by_name = {c["name"]: c for c in selection["candidates"]}
        assert selection["machine"]["where"] == "adb:FAKE0001 (fake-local)" and selection["machine"]["threads"] == 1
        # every ranked latency is bench's median on the "phone", and says where it was measured
        medians = {r["bundle"]: r["latency_ms"]["median"] for r in bench["results"]}
        assert set(medians) == set(by_name) and bench["measured_on"] == "fake-local"
        for c in by_name.values():
            assert c["latency_ms"] == medians[c["name"]] and c["measured_on"] == "adb:FAKE0001 (fake-local)"
            assert c["threads"] == 1
        planted = by_name["student-executorch-int8"]
        assert planted["status"] == "fail" and not planted["passed"] and selection["default"] != planted["name"]
        winner = by_name[selection["default"]]
        assert winner["passed"] and selection["candidates"][0]["name"] == winner["name"]
        assert (out / "bundles" / "default" / "SELECTED").read_text().strip() == winner["name"]
        # the fp32 program's outputs computed on the phone were checked against the teacher there too
        assert by_name["student-executorch-fp32"]["extra"]["device_outputs_passed"] is True
        md = (out / "selection.md").read_text()
        assert "Timed on: adb:FAKE0001 (fake-local)" in md and "NOT device latencies" in md
        ran = (root / ".taskset-log").read_text().splitlines()  # the profile's one thread reached the runners
        assert any("./executor_runner" in line and "--cpu_threads 1" in line for line in ran)
        assert any("./onnxruntime_perf_test" in line and "-x 1" in line for line in ran)
        winners.append(winner["name"])
    assert len(set(winners)) == 1
