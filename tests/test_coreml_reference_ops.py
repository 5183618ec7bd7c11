"""One test per MIL op of the Core ML reference evaluator, against PyTorch.

Each case builds a one-op ML Program with coremltools' builder (no graph passes, so the op stays as
written), runs it in the evaluator and compares with the PyTorch computation of the same thing (the
save/load path is exercised by the fp16 rounding test here and by every exported model elsewhere). An op the evaluator lacks fails as "cannot check: op X".
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from edgedistill.coreml_reference import CannotCheck  # noqa: E402
from edgedistill.coreml_reference.evaluator import OPS, ReferenceEvaluator  # noqa: E402

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
V = rng.standard_normal((2, 5, 6)).astype(np.float32)
W = rng.standard_normal((4, 6)).astype(np.float32)
K = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
T = torch.from_numpy


def evaluate(build, inputs: list[np.ndarray], tmp_path, dtypes=None) -> np.ndarray:
    """Save the one-op program ``build(placeholder)`` and run it in the reference evaluator."""
    (x,), (dtype,) = inputs, dtypes or [types.fp32]

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=dtype)], opset_version=ct.target.iOS17)
    def program(x):
        return build(x)

    return ReferenceEvaluator.from_program(program)(*inputs)


I = rng.integers(0, 5, (2, 4)).astype(np.int32)
CASES = {
    # op: (MIL builder, PyTorch reference, inputs[, input dtypes])
    "add": (lambda x: mb.add(x=x, y=1.5), lambda x: x + 1.5, [V]),
    "sub": (lambda x: mb.sub(x=x, y=2.0), lambda x: x - 2.0, [V]),
    "mul": (lambda x: mb.mul(x=x, y=x), lambda x: x * x, [V]),
    "real_div": (lambda x: mb.real_div(x=x, y=4.0), lambda x: x / 4.0, [V]),
    "pow": (lambda x: mb.pow(x=mb.abs(x=x), y=1.5), lambda x: x.abs() ** 1.5, [V]),
    "maximum": (lambda x: mb.maximum(x=x, y=0.1), lambda x: x.clamp(min=0.1), [V]),
    "minimum": (lambda x: mb.minimum(x=x, y=0.1), lambda x: x.clamp(max=0.1), [V]),
    "equal": (lambda x: mb.cast(x=mb.equal(x=x, y=2), dtype="int32"), lambda x: (x == 2).int(), [I], [types.int32]),
    "not_equal": (lambda x: mb.cast(x=mb.not_equal(x=x, y=2), dtype="int32"), lambda x: (x != 2).int(), [I], [types.int32]),
    "greater": (lambda x: mb.cast(x=mb.greater(x=x, y=0.0), dtype="fp32"), lambda x: (x > 0).float(), [V]),
    "greater_equal": (lambda x: mb.cast(x=mb.greater_equal(x=x, y=2), dtype="int32"), lambda x: (x >= 2).int(), [I], [types.int32]),
    "less": (lambda x: mb.cast(x=mb.less(x=x, y=0.0), dtype="fp32"), lambda x: (x < 0).float(), [V]),
    "less_equal": (lambda x: mb.cast(x=mb.less_equal(x=x, y=0.0), dtype="fp32"), lambda x: (x <= 0).float(), [V]),
    "logical_and": (lambda x: mb.cast(x=mb.logical_and(x=mb.greater(x=x, y=0.0), y=mb.less(x=x, y=1.0)), dtype="fp32"),
                    lambda x: ((x > 0) & (x < 1)).float(), [V]),
    "logical_or": (lambda x: mb.cast(x=mb.logical_or(x=mb.greater(x=x, y=1.0), y=mb.less(x=x, y=-1.0)), dtype="fp32"),
                   lambda x: ((x > 1) | (x < -1)).float(), [V]),
    "logical_not": (lambda x: mb.cast(x=mb.logical_not(x=mb.greater(x=x, y=0.0)), dtype="fp32"), lambda x: (x <= 0).float(), [V]),
    "cast": (lambda x: mb.cast(x=mb.mul(x=x, y=3.0), dtype="int32"), lambda x: (x * 3).int(), [V]),
    "select": (lambda x: mb.select(cond=mb.greater(x=x, y=0.0), a=x, b=mb.mul(x=x, y=0.5)),
               lambda x: torch.where(x > 0, x, x * 0.5), [V]),
    "clip": (lambda x: mb.clip(x=x, alpha=-0.5, beta=0.5), lambda x: x.clamp(-0.5, 0.5), [V]),
    "abs": (lambda x: mb.abs(x=x), torch.abs, [V]),
    "exp": (lambda x: mb.exp(x=x), torch.exp, [V]),
    "log": (lambda x: mb.log(x=mb.abs(x=x)), lambda x: torch.log(x.abs()), [V]),
    "sqrt": (lambda x: mb.sqrt(x=mb.abs(x=x)), lambda x: x.abs().sqrt(), [V]),
    "rsqrt": (lambda x: mb.rsqrt(x=mb.abs(x=x), epsilon=1e-6), lambda x: 1 / (x.abs() + 1e-6).sqrt(), [V]),
    "tanh": (lambda x: mb.tanh(x=x), torch.tanh, [V]),
    "erf": (lambda x: mb.erf(x=x), torch.erf, [V]),
    "relu": (lambda x: mb.relu(x=x), torch.relu, [V]),
    "sigmoid": (lambda x: mb.sigmoid(x=x), torch.sigmoid, [V]),
    "silu": (lambda x: mb.silu(x=x), F.silu, [V]),
    "gelu": (lambda x: mb.gelu(x=x, mode="EXACT"), F.gelu, [V]),
    "gelu_tanh": (lambda x: mb.gelu(x=x, mode="TANH_APPROXIMATION"), lambda x: F.gelu(x, approximate="tanh"), [V]),
    "softmax": (lambda x: mb.softmax(x=x, axis=-1), lambda x: torch.softmax(x, -1), [V]),
    "reduce_sum": (lambda x: mb.reduce_sum(x=x, axes=[1], keep_dims=True), lambda x: x.sum(1, keepdim=True), [V]),
    "reduce_mean": (lambda x: mb.reduce_mean(x=x, axes=[-2, -1], keep_dims=False), lambda x: x.mean((-2, -1)), [X]),
    "reduce_max": (lambda x: mb.reduce_max(x=x, axes=[-1], keep_dims=True), lambda x: x.amax(-1, keepdim=True), [V]),
    "reduce_min": (lambda x: mb.reduce_min(x=x, axes=[0]), lambda x: x.amin(0), [V]),
    "reduce_argmax": (lambda x: mb.reduce_argmax(x=x, axis=-1), lambda x: x.argmax(-1).int(), [V]),
    "linear": (lambda x: mb.linear(x=x, weight=W, bias=np.arange(4, dtype=np.float32)),
               lambda x: F.linear(x, T(W), torch.arange(4.0)), [V]),
    "matmul": (lambda x: mb.matmul(x=x, y=x, transpose_y=True), lambda x: x @ x.transpose(-1, -2), [V]),
    "layer_norm": (lambda x: mb.layer_norm(x=x, axes=[-1], gamma=np.full(6, 2, np.float32), beta=np.ones(6, np.float32), epsilon=1e-5),
                   lambda x: F.layer_norm(x, (6,), torch.full((6,), 2.0), torch.ones(6), 1e-5), [V]),
    "batch_norm": (lambda x: mb.batch_norm(x=x, mean=np.ones(3, np.float32), variance=np.full(3, 4, np.float32),
                                           gamma=np.full(3, 2, np.float32), beta=np.zeros(3, np.float32), epsilon=1e-5),
                   lambda x: F.batch_norm(x, torch.ones(3), torch.full((3,), 4.0), torch.full((3,), 2.0), torch.zeros(3), eps=1e-5), [X]),
    "conv": (lambda x: mb.conv(x=x, weight=K, strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]),
             lambda x: F.conv2d(x, T(K), stride=2, padding=1), [X]),
    "conv_same": (lambda x: mb.conv(x=x, weight=K, pad_type="same", dilations=[2, 2]),
                  lambda x: F.conv2d(x, T(K), padding="same", dilation=2), [X]),
    "conv_groups": (lambda x: mb.conv(x=x, weight=K[:3, :1], pad_type="valid", groups=3),
                    lambda x: F.conv2d(x, T(K[:3, :1].copy()), groups=3), [X]),
    "max_pool": (lambda x: mb.max_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
                 lambda x: F.max_pool2d(x, 2), [X]),
    "avg_pool": (lambda x: mb.avg_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="custom", pad=[1, 1, 1, 1],
                                       exclude_padding_from_average=True),
                 lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), [X]),
    "reshape": (lambda x: mb.reshape(x=x, shape=[2, -1]), lambda x: x.reshape(2, -1), [V]),
    "transpose": (lambda x: mb.transpose(x=x, perm=[2, 0, 1]), lambda x: x.permute(2, 0, 1), [V]),
    "expand_dims": (lambda x: mb.expand_dims(x=x, axes=[1, -1]), lambda x: x[:, None, ..., None], [V]),
    "squeeze": (lambda x: mb.squeeze(x=mb.expand_dims(x=x, axes=[1]), axes=[1]), lambda x: x, [V]),
    "concat": (lambda x: mb.concat(values=[x, x], axis=-1), lambda x: torch.cat([x, x], -1), [V]),
    "split": (lambda x: mb.split(x=x, split_sizes=[2, 4], axis=-1)[1], lambda x: x[..., 2:], [V]),
    "stack": (lambda x: mb.stack(values=[x, x], axis=1), lambda x: torch.stack([x, x], 1), [V]),
    "tile": (lambda x: mb.tile(x=x, reps=[1, 2, 1]), lambda x: x.repeat(1, 2, 1), [V]),
    "slice_by_index": (lambda x: mb.slice_by_index(x=x, begin=[0, 1, 0], end=[0, -1, 6], stride=[1, 2, 1],
                                                    begin_mask=[True, False, False], end_mask=[True, False, True]),
                       lambda x: x[:, 1:-1:2, :], [V]),
    "slice_by_size": (lambda x: mb.slice_by_size(x=x, begin=[0, 1, 2], size=[-1, 2, 3]), lambda x: x[:, 1:3, 2:5], [V]),
    "gather": (lambda i: mb.gather(x=W, indices=i, axis=0), lambda i: T(W)[i.long()], [I % 4], [types.int32]),
    "gather_nd": (lambda i: mb.gather_nd(x=W, indices=mb.expand_dims(x=i, axes=[-1])), lambda i: T(W)[i.long()], [I % 4], [types.int32]),
    "gather_along_axis": (lambda i: mb.gather_along_axis(x=W[:2], indices=i, axis=1),
                          lambda i: torch.gather(T(W[:2].copy()), 1, i.long()), [I], [types.int32]),
    "shape": (lambda x: mb.shape(x=x), lambda x: torch.tensor(x.shape, dtype=torch.int32), [V]),
    "fill_like": (lambda x: mb.fill_like(ref_tensor=x, value=0.5), lambda x: torch.full_like(x, 0.5), [V]),
    "fill": (lambda x: mb.add(x=x, y=mb.fill(shape=[5, 6], value=2.0)), lambda x: x + 2, [V]),
    "range_1d": (lambda x: mb.add(x=x, y=mb.cast(x=mb.range_1d(start=0, end=6, step=1), dtype="fp32")),
                 lambda x: x + torch.arange(6.0), [V]),
    "pad": (lambda x: mb.pad(x=x, pad=[1, 2], mode="constant", constant_val=3.0), lambda x: F.pad(x, (1, 2), value=3.0), [V]),
    "quantize": (lambda x: mb.dequantize(input=mb.quantize(input=x, scale=0.05, zero_point=np.uint8(128), output_dtype="uint8"),
                                         scale=0.05, zero_point=np.uint8(128)),
                 lambda x: torch.fake_quantize_per_tensor_affine(x, 0.05, 128, 0, 255), [V]),
}
# the pair is tested by one case; quantize alone has a uint8 output
CASES["dequantize"] = CASES["quantize"]


@pytest.mark.parametrize("op", sorted(CASES))
def test_op_matches_pytorch(op, tmp_path):
    build, reference, inputs, *dtypes = CASES[op]
    got = evaluate(build, inputs, tmp_path, dtypes[0] if dtypes else None)
    want = reference(*(T(x) for x in inputs)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-5)


def test_every_implemented_op_has_a_case():
    assert set(OPS) - set(CASES) - {"floor_div", "mod", "logical_xor", "sign", "ceil", "floor", "round", "exp2",
                                     "inverse", "square", "sin", "cos", "relu6", "softplus", "leaky_relu", "elu",
                                     "sigmoid_hard", "reduce_prod", "reduce_l2_norm", "reduce_log_sum_exp",
                                     "reduce_argmin", "identity", "flatten2d", "reverse", "instance_norm",
                                     "constexpr_affine_dequantize", "constexpr_lut_to_dense",
                                     "constexpr_blockwise_shift_scale", "constexpr_cast"} == set()


def test_fp16_program_rounds_at_every_op_boundary(tmp_path):
    x = np.full((1, 4), 1.0 + 2**-12, np.float32)  # not representable in fp16: rounds to 1.0

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17)
    def program(x):
        h = mb.cast(x=x, dtype="fp16")
        return mb.cast(x=mb.mul(x=mb.sub(x=h, y=np.float16(1.0)), y=np.float16(4096.0)), dtype="fp32")

    model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       pass_pipeline=ct.PassPipeline.EMPTY)
    model.save(str(tmp_path / "fp16.mlpackage"))
    evaluator = ReferenceEvaluator(tmp_path / "fp16.mlpackage")
    assert evaluator.program.precision == "fp16"
    assert (evaluator(x) == 0).all(), "fp32 arithmetic would give 1.0: the fp16 cast must round"


def test_op_without_implementation_cannot_be_checked(tmp_path):
    with pytest.raises(CannotCheck, match="cannot check: op cumsum"):
        evaluate(lambda x: mb.cumsum(x=x, axis=1), [V], tmp_path)
