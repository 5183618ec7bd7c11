"""Quantization-aware distillation: fine-tune a student under simulated int8 with the KD loss.

pt2e QAT (``prepare_qat_pt2e`` with ExecuTorch's ``XNNPACKQuantizer(is_qat=True)``: per-channel int8
weights, per-tensor int8 activations, fake-quantized in the forward pass, straight-through gradients)
on the exported student; the loss is the usual α·KD + (1−α)·CE against the frozen teacher's logits.
The learned weights are copied back into the student, which stays an ordinary float checkpoint:
every format's int8 exporter then quantizes it with its own calibrated PTQ, and it lands on ranges the
weights were trained to tolerate. That keeps one artifact path for all formats (ExecuTorch, ONNX,
LiteRT, Core ML) instead of a converted QAT graph that only ExecuTorch's lowering accepts.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset, Inputs
from edgedistill.distillation.losses import kd_loss
from edgedistill.errors import UserError

log = logging.getLogger("edgedistill")


def _qat_graph(student: nn.Module, example: tuple[torch.Tensor, ...]) -> torch.fx.GraphModule:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    batch = torch.export.Dim("batch", min=1, max=4096)
    graph = torch.export.export(student, example, dynamic_shapes=tuple({0: batch} for _ in example)).module()
    config = get_symmetric_quantization_config(is_per_channel=True, is_qat=True)
    prepared = prepare_qat_pt2e(graph, XNNPACKQuantizer().set_global(config))
    allow_exported_model_train_eval(prepared)  # so .train()/.eval() switch observers and dropout as expected
    return prepared


def qat_distill(student: nn.Module, train: Dataset, teacher_logits: np.ndarray | torch.Tensor, *,
                calibration: Inputs, epochs: int = 4, lr: float = 5e-4, temperature: float = 4.0, alpha: float = 1.0,
                batch_size: int = 64, seed: int = 0) -> nn.Module:
    """A copy of ``student`` fine-tuned under pt2e int8 fake quantization to match ``teacher_logits``
    (the frozen teacher's logits on ``train``), starting from observers calibrated on ``calibration``."""
    if alpha < 1.0 and train.y is None:
        raise UserError("quantization-aware distillation without labels needs alpha = 1")
    torch.manual_seed(seed)
    model = copy.deepcopy(student).eval()
    xs = [torch.as_tensor(v) for v in train.inputs.values()]
    targets = torch.as_tensor(teacher_logits, dtype=torch.float32)
    labels = None if train.y is None else torch.as_tensor(train.y)
    prepared = _qat_graph(model, tuple(x[:2] for x in xs))
    with torch.no_grad():  # start from the PTQ ranges: observers see the calibration set first
        for i in range(0, len(next(iter(calibration.values()))), batch_size):
            prepared(*(torch.as_tensor(v[i : i + batch_size]) for v in calibration.values()))
    optimizer = torch.optim.AdamW(prepared.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    prepared.train()
    for epoch in range(epochs):
        order, total = torch.randperm(len(xs[0]), generator=generator), 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss, _ = kd_loss(prepared(*(x[idx] for x in xs)), targets[idx], None if labels is None else labels[idx],
                              temperature=temperature, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
        log.info("qat: epoch %d/%d, loss %.4f", epoch + 1, epochs, total / len(order))
    return _weights_back(prepared, model)


def _weights_back(prepared: nn.Module, student: nn.Module) -> nn.Module:
    """The student with the parameters QAT trained (the exported graph keeps the student's parameter names)."""
    trained = dict(prepared.named_parameters())
    wanted = dict(student.named_parameters())
    missing = sorted(set(wanted) - set(trained))
    if missing:  # a graph rewrite renamed parameters (e.g. conv-bn folding): do not hand back half-trained weights
        raise UserError(f"quantization-aware distillation could not map parameters back: {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, param in wanted.items():
            param.copy_(trained[name].detach())
    return student.eval()
