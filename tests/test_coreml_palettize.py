"""Core ML data-aware palettization: with a calibration set, a 4-bit table weighted by the input channels'
second moments (and GPTQ-style error feedback) leaves a layer much less output error than plain k-means
when its input channels differ in scale, and the package it writes is an ordinary ``constexpr_lut_to_dense``
that the reference evaluator decodes exactly as coremltools does. Without a calibration set export falls
back to plain k-means and says so. (Whole students under palettize4: tests/test_format_coreml.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.formats import coreml
from edgedistill.formats.coreml_palettize import weighted_kmeans_1d

pytest.importorskip("coremltools")
pytestmark = pytest.mark.slow  # two Core ML exports


def uneven_layer() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """A 48-in, 24-out Linear whose inputs range from always-zero to scale 30 and whose weights are, as in a
    trained layer, small where the inputs are large; with calibration and held-out inputs."""
    rng = np.random.default_rng(0)
    scales = np.geomspace(0.01, 30.0, 48)
    scales[:4] = 0.0  # dead inputs (a digits image's border pixels): their weights never matter
    rng.shuffle(scales)
    layer = nn.Linear(48, 24).eval()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.standard_normal((24, 48)) / np.sqrt(np.maximum(scales, 0.01))))
    calibration = (rng.standard_normal((256, 48)) * scales).astype(np.float32)
    held_out = (rng.standard_normal((200, 48)) * scales).astype(np.float32)
    return layer, calibration, held_out


def materialized(package) -> dict[str, np.ndarray]:
    """Every constexpr's value as coremltools' own op definitions materialize it."""
    from edgedistill.coreml_reference.loader import read_program

    return {op.outputs[0].name: op.materialized_val_inference()
            for op in read_program(package).functions["main"].operations if op.op_type.startswith("constexpr_")}


def test_data_aware_palettize4_cuts_output_error_and_decodes_exactly(tmp_path):
    layer, calibration, held_out = uneven_layer()
    want = layer(torch.from_numpy(held_out)).detach().numpy()
    example = (torch.from_numpy(held_out[:2]),)
    error = {}
    for mode, data in (("plain", None), ("data-aware", {"x": calibration})):
        path = tmp_path / f"{mode}.mlpackage"
        info = coreml.export(layer, example, scheme="palettize4", path=path, calibration=data,
                             options={"input_names": ["x"]})
        assert info.details["precision"]["weight_clustering"].startswith(
            "data-aware" if data else "k-means per tensor (no calibration set")
        runner = coreml.load_reference(path)
        [step] = [s for s in runner.program.steps if s.op_type == "linear"]
        decoded = np.asarray(runner.program.constants[step.inputs["weight"]], np.float32)
        assert decoded.shape == (24, 48) and len(np.unique(decoded)) <= 16
        # the evaluator's decoding is coremltools' own, bit for bit, and it is what the program runs
        forms = {s.op_type for s in runner.program.steps if s.op_type.startswith("constexpr_")}
        assert forms == {"constexpr_lut_to_dense"}, forms
        for name, value in materialized(path).items():
            np.testing.assert_array_equal(np.asarray(runner.program.constants[name], np.float32),
                                          np.asarray(value, np.float32), err_msg=name)
        got = runner(held_out)
        bias = layer.bias.detach().numpy()
        np.testing.assert_allclose(got, held_out @ decoded.T + bias, rtol=2e-2, atol=2e-2 * np.abs(want).max())
        error[mode] = float(np.mean((got - want) ** 2))
    # plain k-means spends its entries on the large weights of inputs that are (nearly) zero; measured
    # 2026-12-02: data-aware leaves ~3 % of plain k-means' output error on this layer
    assert error["data-aware"] < 0.2 * error["plain"], error


def test_weighted_kmeans_puts_entries_where_the_weight_is():
    """Half the values near 0 carry all the weight: the table resolves them finely and spends one entry
    (or so) on the weightless far values, which plain k-means spreads its entries over."""
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 0.01, 500), rng.normal(5, 2, 500)])
    weights = np.concatenate([np.ones(500), np.zeros(500)])
    weighted, plain = weighted_kmeans_1d(values, weights, 16), weighted_kmeans_1d(values, None, 16)
    assert len(weighted) == 16 and np.all(np.diff(weighted) >= 0)

    def cost(table, mask):
        return float(np.sum(np.min((values[mask, None] - table[None, :]) ** 2, axis=1)))

    near = weights > 0
    assert cost(weighted, near) < 0.1 * cost(plain, near)
    assert cost(plain, np.ones_like(near)) < cost(weighted, np.ones_like(near))  # the unweighted objective is plain's
