"""Cross-layer equalization: the same logits, equalized channel ranges, and hands off what it cannot prove exact."""

from __future__ import annotations

import torch
from torch import nn

from edgedistill.equalize import equalize, find_pairs
from int8_cases import _plant, deep_mlp


def _planted_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = deep_mlp(width=24, depth=4).eval()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for k, (producer, consumer) in enumerate(zip(linears[:-1], linears[1:])):
        _plant(producer, consumer, k, k, 50.0)
    return model


def test_equalize_keeps_the_logits_and_brings_planted_channels_back_to_their_layer():
    model = _planted_mlp()
    before = model[0].weight.detach().clone()
    x = torch.randn(256, 64) * 4
    result = equalize(model)
    assert [(p.producer, p.consumer) for p in result.pairs] == [("0", "2"), ("2", "4"), ("4", "6"), ("6", "8")]
    with torch.no_grad():
        expected, got = model(x), result.model(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    assert torch.equal(model[0].weight, before)  # the original is untouched
    assert result.spread_before > 30 and result.spread_after < 3, result.summary()
    with torch.no_grad():  # the hidden activations: no channel 50x the rest any more
        h = torch.relu(result.model[0](x)).amax(0)
        h0 = torch.relu(model[0](x)).amax(0)
    assert float(h0.max() / h0.median()) > 30 > 5 > float(h.max() / h.median())


def test_equalize_rescales_through_batch_norm_and_pooling_exactly():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(8, 4, 1))
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.weight[3] *= 40  # one channel 40x the rest after batch norm
        model[4].weight[:, 3] /= 40
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    result = equalize(model)
    assert [(p.producer, p.batch_norm, p.consumer) for p in result.pairs] == [("0", "1", "4"), ("4", None, "7")]
    with torch.no_grad():
        assert torch.allclose(result.model(x), model(x), rtol=1e-4, atol=1e-5)
    assert result.spread_before > 20 > 3 > result.spread_after


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(h + self.b(h))  # h feeds both b and the add: scaling it would change the sum


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.b(torch.relu(self.a(torch.relu(self.a(x)))))  # a is called twice


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            x = -x
        return self.b(torch.relu(self.a(x)))


def test_equalize_leaves_alone_what_it_cannot_prove_exact():
    for model in (nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8)),
                  nn.Sequential(nn.Linear(8, 8), nn.ReLU6(), nn.Linear(8, 8)),
                  nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Flatten(), nn.Linear(8, 8)),
                  _Residual(), _Twice()):
        assert find_pairs(model) == ([], None), model
        result = equalize(model)
        assert result.pairs == [] and "no Linear/Conv" in result.skipped
        assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), result.model.state_dict().values()))
    result = equalize(_Untraceable())
    assert result.pairs == [] and result.skipped.startswith("not fx-traceable")
