"""ExecuTorch ``.pte``: torch.export -> to_edge_transform_and_lower(XNNPACK) -> to_executorch.

int8 is pt2e static quantization (per-channel weights, per-tensor activations) with ExecuTorch's
XNNPACKQuantizer, calibrated on real inputs. The host runner is ``executorch.runtime``, the same
C++ runtime that runs on the phone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError, require
from edgedistill.formats.base import ExportInfo, calibration_batches

NAME = "executorch"
SUFFIX = ".pte"
EXTRA = "executorch"
BACKEND = "xnnpack"
SCHEMES = ("fp32", "int8")
FLOAT_MODULES = True  # export() honours options["float_modules"] (used by validate --repair)
MAX_BATCH = 1024

log = logging.getLogger("edgedistill")


def missing() -> str | None:
    """None when ExecuTorch can export and run here, else the install hint."""
    try:
        require("executorch.exir", EXTRA, "ExecuTorch")
        require("executorch.runtime", EXTRA, "ExecuTorch")
    except UserError as exc:
        return str(exc)
    return None


def _dynamic_shapes(example_inputs: Sequence[torch.Tensor], dynamic_batch: bool):
    if not dynamic_batch:
        return None
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return tuple({0: batch} for _ in example_inputs)


def _quantize_int8(model: nn.Module, example_inputs: tuple[torch.Tensor, ...],
                   calibration: dict[str, np.ndarray] | None, dynamic_shapes,
                   float_modules: Sequence[str] = ()) -> nn.Module:
    if not calibration or len(next(iter(calibration.values()))) == 0:
        raise UserError("int8 needs a calibration set of representative inputs (none or empty given)")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    unknown = sorted(set(float_modules) - {name for name, _ in model.named_modules()})
    if unknown:
        raise UserError(f"float_modules {', '.join(unknown)} are not submodules of the model")
    if float_modules:  # accuracy-aware mixed precision (set_module_name(name, None) is not supported yet)
        from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

        in_float = [get_module_name_filter(name) for name in float_modules]
        quantizer.set_filter_function(lambda node: not any(f(node) for f in in_float))
    graph = torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for batch in calibration_batches(calibration):
            prepared(*batch)
    return convert_pt2e(prepared)


def export(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, path: Path,
           calibration: dict[str, np.ndarray] | None = None, dynamic_batch: bool = True,
           options: dict | None = None) -> ExportInfo:
    """Lower ``model`` to a .pte at ``path`` with XNNPACK, quantized per ``scheme``.

    ``options["float_modules"]``: qualified names of submodules kept in floating point under int8.
    """
    require("executorch.exir", EXTRA, "ExecuTorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    if scheme not in SCHEMES:
        raise UserError(f"format {NAME} does not support quantization {scheme!r}; supported: {', '.join(SCHEMES)}")
    model = model.eval()
    dynamic_shapes = _dynamic_shapes(example_inputs, dynamic_batch)
    with torch.no_grad():
        if scheme == "int8":
            model = _quantize_int8(model, example_inputs, calibration, dynamic_shapes,
                                   (options or {}).get("float_modules", ()))
        program = torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes)
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    info = get_delegation_info(edge.exported_program().graph_module)
    executorch_program = edge.to_executorch()
    Path(path).write_bytes(executorch_program.buffer)
    return ExportInfo(
        path=Path(path),
        backend_version=_version(),
        delegated_ops=info.num_delegated_nodes,
        portable_ops=info.num_non_delegated_nodes,
        dynamic_batch=dynamic_batch,
        details={"delegated_subgraphs": info.num_delegated_subgraphs},
    )


def _version() -> str:
    from importlib.metadata import version

    return version("executorch")


class PteRunner:
    """Runs a .pte's ``forward`` in the ExecuTorch runtime (the same C++ runtime as on device)."""

    def __init__(self, path: Path, max_batch: int | None = None):
        require("executorch.runtime", EXTRA, "ExecuTorch")
        from executorch.runtime import Runtime

        self.max_batch = max_batch
        try:
            self._program = Runtime.get().load_program(Path(path))
            self._method = self._program.load_method("forward")
        except Exception as exc:  # the runtime raises RuntimeError/ValueError for bad programs
            raise UserError(f"ExecuTorch cannot load {path}: {str(exc).splitlines()[0][:200]}") from None

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        outputs = self._method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return outputs[0].numpy().copy()


def load(path: Path, max_batch: int | None = None) -> PteRunner:
    """Load a .pte for host inference."""
    return PteRunner(path, max_batch)
