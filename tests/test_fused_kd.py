"""The fused KD + CE loss equals the autograd formula in value and in gradient, for every T and alpha."""

import pytest
import torch
import torch.nn.functional as F

from edgedistill.distillation.fused_kd import fused_kd_loss, temper
from edgedistill.distillation.teacher_logits import Precomputed, TemperedTable, at_temperature


def _autograd_loss(s, t, y, T, alpha):
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True) * T * T
    return alpha * kl + (1 - alpha) * F.cross_entropy(s, y) if alpha < 1 else kl


@pytest.mark.parametrize("T,alpha", [(4.0, 0.5), (1.0, 0.0), (2.5, 1.0), (10.0, 0.9), (0.5, 0.3)])
def test_closed_form_gradient_matches_autograd(T, alpha):
    gen = torch.Generator().manual_seed(int(T * 10 + alpha * 100))
    s = (torch.randn(9, 7, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    t = torch.randn(9, 7, generator=gen, dtype=torch.float64) * 4
    y = torch.randint(0, 7, (9,), generator=gen)
    reference = _autograd_loss(s, t, y, T, alpha)
    (expected,) = torch.autograd.grad(reference * 1.7, s)  # an upstream gradient other than 1
    loss, kd, _ = fused_kd_loss(s, temper(t, T), y, alpha)
    (grad,) = torch.autograd.grad(loss * 1.7, s)
    assert torch.allclose(loss, reference, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad, expected, rtol=1e-9, atol=1e-12)
    assert not kd.requires_grad


def test_fused_gradient_passes_gradcheck():
    s = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    teacher, y = temper(torch.randn(4, 5, dtype=torch.float64), 3.0), torch.randint(0, 5, (4,))
    assert torch.autograd.gradcheck(lambda x: fused_kd_loss(x, teacher, y, 0.6)[0], (s,))


def test_extreme_teacher_logits_stay_finite():
    """A teacher so sure that some probabilities underflow to 0 must not turn the loss into NaN."""
    t = torch.tensor([[1e4, 0.0, -1e4]])
    s = torch.zeros(1, 3, requires_grad=True)
    loss, _, _ = fused_kd_loss(s, temper(t, 1.0), None, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_tempered_table_serves_the_same_rows_as_the_logits():
    from edgedistill.data import Dataset

    data = Dataset({"x": torch.randn(20, 6).numpy()}, None, name="rows")
    source = Precomputed(torch.nn.Linear(6, 4), data)
    table = at_temperature(source, 2.0, len(data), torch.device("cpu"))
    assert isinstance(table, TemperedTable)
    index = torch.tensor([3, 17, 0])
    rows, direct = table.batch(index, [torch.empty(0)]), temper(source.table[index], 2.0)
    assert torch.allclose(rows.probs, direct.probs) and torch.equal(rows.argmax(1), direct.top1)
    assert torch.allclose(rows.neg_entropy, direct.neg_entropy)


@pytest.mark.parametrize("T,alpha", [(4.0, 0.5), (1.0, 0.0), (2.5, 1.0), (0.5, 0.3)])
def test_the_training_step_without_autograd_matches_autograd(T, alpha):
    """closed_form_step (what the training loop runs) gives autograd's loss and gradient, and the agreement."""
    from edgedistill.distillation.fused_kd import closed_form_step

    gen = torch.Generator().manual_seed(int(T * 10 + alpha * 100))
    s = (torch.randn(9, 7, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    t = torch.randn(9, 7, generator=gen, dtype=torch.float64) * 4
    y = torch.randint(0, 7, (9,), generator=gen)
    reference = _autograd_loss(s, t, y, T, alpha)
    (expected,) = torch.autograd.grad(reference, s)
    for teacher in (temper(t, T), TemperedTable(t, T, torch.device("cpu")).batch(torch.arange(9), [s])):
        step = closed_form_step(s, teacher, y if alpha < 1 else None, alpha)
        assert torch.allclose(step.loss, reference, rtol=1e-10, atol=1e-12) and not step.loss.requires_grad
        assert torch.allclose(step.grad, expected, rtol=1e-9, atol=1e-12) and step.grad.shape == s.shape
        assert int(step.agree) == int((s.argmax(1) == t.argmax(1)).sum())


def test_training_in_closed_form_gives_the_autograd_model():
    """The loop's closed-form KD step trains the same weights as the autograd loss (the objective's fallback)."""
    from edgedistill.data import Dataset
    from edgedistill.distillation.objective import DistillObjective
    from edgedistill.distillation.trainer import train

    class ThroughAutograd(DistillObjective):
        def closed_form(self, *args):
            return None

    gen = torch.Generator().manual_seed(0)
    data = Dataset({"x": torch.randn(96, 6, generator=gen).numpy()}, torch.randint(0, 4, (96,), generator=gen).numpy(),
                   name="rows")
    teacher = torch.nn.Linear(6, 4)
    results = []
    for objective in (DistillObjective(3.0, 0.4), ThroughAutograd(3.0, 0.4)):
        torch.manual_seed(1)
        student = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
        history = train(student, data, teacher=teacher, objective=objective, epochs=3, batch_size=32, device="cpu").history
        results.append((student.state_dict(), history))
    (fast, fast_history), (slow, slow_history) = results
    for name in fast:
        assert torch.allclose(fast[name], slow[name], atol=1e-5), name
    for a, b in zip(fast_history, slow_history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["train_agree"] == b["train_agree"]


def test_a_whole_epoch_served_at_once_is_the_same_teacher_per_batch():
    """TemperedTable.in_order (one gather per epoch, what the loop uses) equals batch() step by step."""
    table = TemperedTable(torch.randn(50, 6) * 3, 2.0, torch.device("cpu"))
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    batches = [order[k : k + 16] for k in range(0, 50, 16)]  # 16, 16, 16, 2
    for whole, one in zip(table.in_order(batches), (table.batch(b, []) for b in batches)):
        for a, b in zip(whole.columns, one.columns):
            assert torch.equal(a, b) and a.is_contiguous()
        assert torch.equal(whole.probs, one.probs) and torch.equal(whole.argmax(1), one.argmax(1))


@pytest.mark.parametrize("alpha", [0.4, 1.0])
def test_an_epoch_planned_step_equals_the_step_from_scratch(alpha):
    """With the epoch's label terms laid out in advance (in_order with labels), the step is unchanged."""
    from edgedistill.distillation.fused_kd import closed_form_step

    gen = torch.Generator().manual_seed(5)
    table = TemperedTable(torch.randn(40, 6, generator=gen) * 3, 2.0, torch.device("cpu"))
    labels = torch.randint(0, 6, (40,), generator=gen)
    order = torch.randperm(40, generator=gen)
    batches = [order[k : k + 16] for k in range(0, 40, 16)]  # 16, 16, 8: the short one is not planned
    planned = table.in_order(batches, labels, alpha)
    assert [t.plan is not None for t in planned] == [True, True, False]
    for teacher, rows in zip(planned, batches):
        s = torch.randn(len(rows), 6, generator=gen)
        fast = closed_form_step(s, teacher, labels[rows], alpha)
        slow = closed_form_step(s, table.batch(rows, []), labels[rows], alpha)
        assert torch.allclose(fast.loss, slow.loss, rtol=1e-5) and torch.allclose(fast.grad, slow.grad, atol=1e-7)
        assert int(fast.agree) == int(slow.agree)
