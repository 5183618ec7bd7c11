"""Every ExecuTorch scheme exports, runs in executorch.runtime and answers like the fp32 PyTorch student,
for the digits MLP and for the TinyEncoder (integer input_ids + attention_mask)."""

from __future__ import annotations

import pytest
import torch

from edgedistill.bundle import read_bundle
from edgedistill.errors import UserError
from edgedistill.formats import executorch
from edgedistill.formats.base import run_batched
from format_models import export_schemes, top1_agreement

pytestmark = pytest.mark.slow
MIN_AGREEMENT = {"fp32": 0.995, "fp16": 0.995, "int8": 0.98, "int8-dynamic": 0.98}


@pytest.fixture(scope="module", params=["digits", "encoder"])
def exported(request, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp(f"et-{request.param}")
    return request.param, *export_schemes(request.param, "executorch", executorch.SCHEMES, out)


@pytest.mark.parametrize("scheme", executorch.SCHEMES)
def test_scheme_runs_in_executorch_and_agrees_with_fp32_student(exported, scheme):
    name, model, splits, bundles = exported
    manifest, model_path = read_bundle(bundles[scheme])
    logits = run_batched(executorch.load(model_path, manifest.max_batch), splits.test.inputs)
    agreement = top1_agreement(model, splits.test.inputs, logits)
    assert agreement >= MIN_AGREEMENT[scheme], f"{name} {scheme}: top-1 agreement {agreement:.3f}"
    assert manifest.host_run["status"] == "ran"
    assert [t.name for t in manifest.inputs] == list(splits.test.inputs)


def test_manifest_reports_delegation_and_quantization_shrinks_the_file(exported):
    name, _, _, bundles = exported
    manifests = {s: read_bundle(b)[0] for s, b in bundles.items()}
    for scheme, m in manifests.items():
        d = m.delegation
        assert d["delegated_ops"] > 0, f"{scheme}: nothing ran in XNNPACK"
        assert d["portable_ops"] >= 0 and d["portable_compute_ops"] is not None
        assert m.backend == "xnnpack"
    assert manifests["int8"].size_bytes < 0.8 * manifests["fp32"].size_bytes
    assert manifests["fp16"].size_bytes < manifests["fp32"].size_bytes
    if name == "digits":  # an MLP lowers completely: nothing computes in the portable kernels
        assert all(m.delegation["portable_compute_ops"] == 0 for m in manifests.values())


def test_encoder_fallback_to_portable_kernels_is_counted(exported):
    name, _, _, bundles = exported
    if name != "encoder":
        pytest.skip("the digits MLP has no portable fallback")
    manifest, _ = read_bundle(bundles["fp32"])
    # XNNPACK takes no layer_norm here: the manifest must say so rather than hide the slow path
    assert manifest.delegation["portable_compute_ops"] >= 1


def test_unknown_backend_and_unsupported_scheme_are_one_line_errors(exported, tmp_path):
    _, model, splits, _ = exported
    example = tuple(torch.as_tensor(v[:2]) for v in splits.test.inputs.values())
    with pytest.raises(UserError, match="unknown executorch backend 'vulkan'; available: xnnpack, coreml"):
        executorch.export(model, example, scheme="fp32", path=tmp_path / "m.pte", options={"backend": "vulkan"})
    with pytest.raises(UserError, match="does not support quantization 'int4-weight'"):
        executorch.export(model, example, scheme="int4-weight", path=tmp_path / "m.pte")
    assert not (tmp_path / "m.pte").exists()

