"""Validation metrics, checks, tolerances and JUnit rendering, against hand computations (no export)."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from edgedistill.config import load_config
from edgedistill.errors import UserError
from edgedistill.validation import metrics
from edgedistill.validation.checks import checks_for
from edgedistill.validation.junit import junit_xml
from edgedistill.validation.results import Report, Row


def _probs(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 6)) * 2
    return ref, ref + rng.normal(size=ref.shape) * 0.7


def test_compare_equals_hand_computation(pair):
    ref, cand = pair
    p, q = _probs(ref), _probs(cand)
    kl = [sum(p[i, c] * np.log(p[i, c] / q[i, c]) for c in range(6)) for i in range(len(p))]
    top3 = [ref[i].argmax() in np.argsort(-cand[i])[:3] for i in range(len(p))]
    got = metrics.compare(ref, cand, k=3)
    assert got["top1_agreement"] == pytest.approx(np.mean(ref.argmax(1) == cand.argmax(1)))
    assert got["topk_agreement"] == pytest.approx(np.mean(top3))
    assert got["mean_kl"] == pytest.approx(np.mean(kl)) and got["max_kl"] == pytest.approx(max(kl))
    assert got["max_abs_dp"] == pytest.approx(np.abs(p - q).max())
    assert got["p99_abs_dp"] == pytest.approx(np.sort(np.abs(p - q).ravel())[int(0.99 * (p.size - 1))], rel=0.05)
    assert 0 < got["top1_agreement"] < got["topk_agreement"] <= 1


def test_ece_flips_and_per_class_by_hand(pair):
    ref, cand = pair
    y = ref.argmax(1).copy()
    y[::4] = (y[::4] + 1) % 6  # a quarter of the labels wrong: the reference is overconfident
    p = _probs(ref)
    conf, correct = p.max(1), p.argmax(1) == y
    ece = 0.0
    for lo in np.arange(10) / 10:
        inside = (conf > lo) & (conf <= lo + 0.1)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert metrics.expected_calibration_error(ref, y, 10) == pytest.approx(ece)
    assert metrics.expected_calibration_error(ref, None) is None
    pairs = {}
    for a, b in zip(ref.argmax(1), cand.argmax(1)):
        if a != b:
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    flips = metrics.disagreement_flips(ref, cand, top=3)
    assert [f["count"] for f in flips] == sorted(pairs.values(), reverse=True)[:3]
    assert all(pairs[(f["reference"], f["candidate"])] == f["count"] for f in flips)
    per_class = metrics.per_class_agreement(ref, cand)
    for c in range(6):
        mask = ref.argmax(1) == c
        assert per_class[c] == pytest.approx((cand.argmax(1)[mask] == c).mean())


def test_every_set_bound_is_a_check_and_unmeasurable_ones_are_skipped():
    tol = load_config(None, {"validate.tolerances.int8.max_ece": 0.1,
                             "validate.tolerances.int8.max_teacher_mean_kl": 0.01}).validate_.tolerances["int8"]
    measured = {"vs_teacher": {"top1_agreement": 0.95, "mean_kl": 0.02}, "vs_student": {"top1_agreement": 0.97,
                "max_abs_dp": 0.1}, "accuracy": None, "accuracy_drop": None, "ece": None}
    checks = {c.bound_key: c for c in checks_for(measured, tol)}
    # defaults for int8 plus the two set above; None bounds are not checks at all
    assert set(checks) == {"min_teacher_top1", "min_student_top1", "max_student_abs_dp", "max_accuracy_drop",
                           "max_ece", "max_teacher_mean_kl"}
    assert checks["max_teacher_mean_kl"].status == "fail" and checks["min_teacher_top1"].status == "pass"
    assert checks["max_ece"].status == "skipped" and checks["max_ece"].reason == "no labels in the data"
    not_run = checks_for(measured, tol, not_run="Core ML runs only on macOS")
    assert {c.status for c in not_run} == {"skipped"}
    assert all(c.reason == "not run: Core ML runs only on macOS" for c in not_run)


def test_config_tolerances_change_only_the_keys_they_name():
    tols = load_config(None, {"validate.tolerances.int8.min_teacher_top1": 0.5}).validate_.tolerances
    assert tols["int8"].min_teacher_top1 == 0.5
    assert tols["int8"].max_student_abs_dp == 0.25 and tols["fp32"].max_student_abs_dp == 0.001
    with pytest.raises(UserError, match="max_ece"):
        load_config(None, {"validate.tolerances.int8.max_ece": 3})


def test_cli_tolerance_flag_sets_one_scheme_or_all():
    from edgedistill.cli.validate import apply_tolerances

    config = load_config()
    apply_tolerances(config, ["int8.min_student_top1=0.98", "max_student_mean_kl=0.01"])
    tols = config.validate_.tolerances
    assert tols["int8"].min_student_top1 == 0.98 and tols["fp32"].min_student_top1 == 0.999
    assert all(t.max_student_mean_kl == 0.01 for t in tols.values())
    for bad in ("int8.no_such_bound=1", "min_teacher_top1=2", "min_teacher_top1=abc", "min_teacher_top1"):
        with pytest.raises(UserError):
            apply_tolerances(config, [bad])


def test_junit_has_a_testcase_per_artifact_check_and_skips_are_not_passes():
    tol = load_config().validate_.tolerances["int8"]
    ran = Row(name="student .pte int8", role="artifact", runtime="xnnpack", format="executorch",
              quantization="int8", parameters=10, path="/b/student-executorch-int8")
    ran.checks = checks_for({"vs_teacher": {"top1_agreement": 0.5}, "vs_student": {"top1_agreement": 1.0,
                             "max_abs_dp": 0.01}, "accuracy": 0.9, "accuracy_drop": 0.0, "ece": 0.01}, tol)
    coreml = Row(name="student .mlpackage int8", role="artifact", runtime="mlprogram", format="coreml",
                 quantization="int8", parameters=10, path="/b/student-coreml-int8", not_run="Core ML runs only on macOS")
    coreml.checks = checks_for({}, tol, not_run=coreml.not_run)
    report = Report(rows=[ran, coreml], samples=3, data="d")
    root = ET.fromstring(junit_xml(report))
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(ran.checks) + len(coreml.checks)
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["top1_agreement_vs_teacher"]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(skipped) == len(coreml.checks)
    assert all("Core ML runs only on macOS" in c.find("skipped").get("message") for c in skipped)
    assert root.get("failures") == "1" and root.get("skipped") == str(len(coreml.checks))
    assert coreml.status == "not run" and report.status == "fail"
    assert Report(rows=[coreml], samples=3, data="d").status == "not run"
