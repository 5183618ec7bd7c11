"""The seed experiment (examples/dark_knowledge): soft targets carry the teacher's dark knowledge.

Both students are about as accurate as the teacher, but the one trained on soft targets matches the
teacher's whole distribution over a dense grid far better than the one trained on hard labels.
"""

import importlib.util

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def results(one_torch_thread):
    spec = importlib.util.spec_from_file_location("dark_knowledge", REPO / "examples" / "dark_knowledge" / "experiment.py")
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    return experiment.run(seed=0)


@pytest.mark.slow
def test_both_students_are_accurate(results):
    teacher = results["teacher"]["accuracy"]
    assert teacher > 0.75  # three overlapping classes: the Bayes rate is about 0.79
    for name in ("soft-target student", "hard-label student"):
        assert results[name]["accuracy"] > teacher - 0.03, (name, results)


@pytest.mark.slow
def test_soft_student_matches_the_teachers_distribution_far_better(results):
    soft, hard = results["soft-target student"], results["hard-label student"]
    assert soft["tv"] < hard["tv"] / 4, results    # measured: 0.010 vs 0.092
    assert soft["kl"] < hard["kl"] / 10, results   # measured: 0.001 vs 0.061
    assert soft["tv"] < 0.03
