"""The distillation loss matches the formula by hand, and only the student gets gradients."""

import math

import numpy as np
import pytest
import torch

from edgedistill.distillation.losses import TopK, kd_loss, logit_mse, reverse_kl, soft_target_kl
from edgedistill.errors import UserError


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _by_hand(s, t, y, T, alpha):
    p_t, p_s = _softmax(t / T), _softmax(s / T)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(-1).mean() * T * T  # summed over classes, mean over batch
    ce = -np.log(_softmax(s)[np.arange(len(y)), y]).mean()
    return alpha * kl + (1 - alpha) * ce, kl, ce


@pytest.mark.parametrize("T,alpha", [(4.0, 0.5), (1.0, 0.3), (10.0, 0.9), (2.0, 1.0), (3.0, 0.0)])
def test_kd_loss_equals_hand_computation(T, alpha):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(7, 5)) * 3, rng.normal(size=(7, 5)) * 3
    y = rng.integers(0, 5, size=7)
    loss, parts = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=T, alpha=alpha)
    expected, kl, _ = _by_hand(s, t, y, T, alpha)
    assert math.isclose(float(loss), expected, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(parts["kd"], kl, rel_tol=1e-9)


def test_t_squared_scaling_and_batch_mean():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    kl_t3 = float(soft_target_kl(torch.tensor(s), torch.tensor(t), 3.0))
    p_t, p_s = _softmax(t / 3), _softmax(s / 3)
    per_sample = (p_t * np.log(p_t / p_s)).sum(-1)
    assert math.isclose(kl_t3, per_sample.mean() * 9, rel_tol=1e-9)
    # duplicating the batch leaves a batch mean unchanged (a sum would double)
    kl_dup = float(soft_target_kl(torch.tensor(np.vstack([s, s])), torch.tensor(np.vstack([t, t])), 3.0))
    assert math.isclose(kl_t3, kl_dup, rel_tol=1e-9)


def test_gradient_reaches_only_the_student():
    student_logits = torch.randn(6, 4, requires_grad=True)
    teacher_logits = torch.randn(6, 4, requires_grad=True)
    loss, _ = kd_loss(student_logits, teacher_logits, torch.randint(0, 4, (6,)))
    loss.backward()
    assert student_logits.grad is not None and student_logits.grad.abs().sum() > 0
    assert teacher_logits.grad is None


def test_missing_labels_need_alpha_one():
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(UserError, match="alpha"):
        kd_loss(s, t, None, alpha=0.5)
    loss, _ = kd_loss(s, t, None, alpha=1.0)
    assert math.isclose(float(loss), float(soft_target_kl(s, t, 4.0)), rel_tol=1e-5)  # float32: same formula, other op order


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_reverse_kl_and_logit_mse_equal_hand_computation(T):
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(5, 6)) * 2, rng.normal(size=(5, 6)) * 2
    p_t, p_s = _softmax(t / T), _softmax(s / T)
    reverse = (p_s * (np.log(p_s) - np.log(p_t))).sum(-1).mean() * T * T
    assert math.isclose(float(reverse_kl(torch.tensor(s), torch.tensor(t), T)), reverse, rel_tol=1e-9)
    assert math.isclose(float(logit_mse(torch.tensor(s), torch.tensor(t))), ((s - t) ** 2).mean(), rel_tol=1e-9)
    # the blend by alpha holds for every soft-target kind
    y = rng.integers(0, 6, size=5)
    ce = -np.log(_softmax(s)[np.arange(5), y]).mean()
    loss, _ = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=T, alpha=0.7, kind="reverse-kl")
    assert math.isclose(float(loss), 0.7 * reverse + 0.3 * ce, rel_tol=1e-9)


def test_top_k_teacher_kl_is_kl_over_the_kept_classes():
    rng = np.random.default_rng(3)
    s, t, T = rng.normal(size=(4, 50)), rng.normal(size=(4, 50)) * 3, 2.0
    idx = np.argsort(-t, axis=1)[:, :5]
    top = np.take_along_axis(t, idx, 1)
    p_t = _softmax(top / T)  # the teacher renormalised over its top 5
    log_p_s = np.log(np.take_along_axis(_softmax(s / T), idx, 1))
    expected = (p_t * (np.log(p_t) - log_p_s)).sum(-1).mean() * T * T
    got = soft_target_kl(torch.tensor(s), TopK(torch.tensor(top), torch.tensor(idx)), T)
    assert math.isclose(float(got), expected, rel_tol=1e-9)
    # with every class kept, the top-k form equals the dense KL
    full = np.argsort(-t, axis=1)
    dense = soft_target_kl(torch.tensor(s), torch.tensor(t), T)
    sparse = soft_target_kl(torch.tensor(s), TopK(torch.tensor(np.take_along_axis(t, full, 1)), torch.tensor(full)), T)
    assert math.isclose(float(dense), float(sparse), rel_tol=1e-9)
    with pytest.raises(UserError, match="full logits"):
        kd_loss(torch.tensor(s), TopK(torch.tensor(top), torch.tensor(idx)), None, alpha=1.0, kind="mse")
