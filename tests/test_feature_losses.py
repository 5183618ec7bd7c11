"""Feature / hidden-state losses between named modules match hand computations; bad names fail early."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.distillation.features import FeatureDistiller, FeaturePair, feature_loss
from edgedistill.distillation.objective import build_objective
from edgedistill.errors import UserError


class Stack(nn.Module):
    """encoder.layer.<i> blocks of a given width, like a BERT encoder, and a head."""

    def __init__(self, width: int, layers: int, classes: int = 3):
        super().__init__()
        self.inp = nn.Linear(4, width)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = self.inp(x)
        for layer in self.encoder.layer:
            h = torch.tanh(layer(h))
        return self.head(h.mean(1))


def _cos_rows(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_mse_and_cosine_feature_losses_by_hand():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    assert math.isclose(float(feature_loss(torch.tensor(s), torch.tensor(t), "mse")), ((s - t) ** 2).mean(), rel_tol=1e-9)
    distance = 1 - _cos_rows(s, t)
    assert math.isclose(float(feature_loss(torch.tensor(s), torch.tensor(t), "cosine")), distance.mean(), rel_tol=1e-9)
    # DistilBERT: only the tokens the attention mask keeps count
    masked = float(feature_loss(torch.tensor(s), torch.tensor(t), "distilbert-cosine", torch.tensor(mask)))
    assert math.isclose(masked, distance[mask == 1].mean(), rel_tol=1e-9)
    assert not math.isclose(masked, distance.mean(), rel_tol=1e-3)


def test_named_modules_with_projection_when_widths_differ():
    torch.manual_seed(0)
    student, teacher = Stack(6, 2).double(), Stack(10, 4).double()
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    distiller = FeatureDistiller(student, teacher, [FeaturePair("encoder.layer.1", "encoder.layer.3", "mse", 0.5)], [x])
    projection = distiller.projections[0]
    assert isinstance(projection, nn.Linear) and (projection.in_features, projection.out_features) == (6, 10)
    distiller.double()
    with distiller.attached():
        student(x), teacher(x)
        loss, parts = distiller([x])
    # by hand: the student's layer-1 output, projected, against the teacher's layer-3 output
    with torch.no_grad():
        h_s = student.encoder.layer[1](torch.tanh(student.encoder.layer[0](student.inp(x)))).numpy()
        h_t = teacher.inp(x)
        for layer in teacher.encoder.layer[:3]:
            h_t = torch.tanh(layer(h_t))
        h_t = teacher.encoder.layer[3](h_t)
    w, b = projection.weight.detach().numpy(), projection.bias.detach().numpy()
    expected = ((h_s @ w.T + b - h_t.numpy()) ** 2).mean()
    assert math.isclose(float(loss), 0.5 * expected, rel_tol=1e-9)
    assert math.isclose(parts["mse:encoder.layer.1"], expected, rel_tol=1e-9)
    # gradients reach the student and the projection, not the teacher
    loss.backward()
    assert projection.weight.grad is not None and student.encoder.layer[1].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_unknown_module_name_lists_close_matches():
    student, teacher = Stack(6, 2), Stack(10, 4)
    with pytest.raises(UserError, match=r"teacher has no module 'encoder.layers.3'.*close matches: encoder.layer.3"):
        build_objective(student, teacher, ["x"], [torch.randn(2, 3, 4)], temperature=4, alpha=0.5,
                        features=[FeaturePair("encoder.layer.1", "encoder.layers.3")])
    assert "\n" not in str(pytest.raises(UserError, build_objective, student, teacher, ["x"], [torch.randn(2, 3, 4)],
                                         temperature=4, alpha=0.5, features=[FeaturePair("encodr.layer.1", "head")]).value)


def test_objective_adds_weighted_feature_loss_to_kd():
    torch.manual_seed(1)
    student, teacher = Stack(10, 2), Stack(10, 4)
    x, y = torch.randn(4, 3, 4), torch.tensor([0, 1, 2, 0])
    objective = build_objective(student, teacher, ["x"], [x], temperature=2.0, alpha=0.5,
                                features=[FeaturePair("encoder.layer.0", "encoder.layer.1", "cosine", 2.0)])
    assert isinstance(objective.features.projections[0], nn.Identity)  # equal widths: no projection
    with objective.attached():
        s_logits = student(x)
        with torch.no_grad():
            t_logits = teacher(x)
        loss, parts = objective(s_logits, t_logits, y, [x])
    from edgedistill.distillation.losses import kd_loss

    kd, _ = kd_loss(s_logits, t_logits, y, 2.0, 0.5)
    assert math.isclose(float(loss), float(kd) + 2.0 * parts["cosine:encoder.layer.0"], rel_tol=1e-6)
