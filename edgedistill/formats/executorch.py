"""ExecuTorch ``.pte``: torch.export -> to_edge_transform_and_lower(partitioner) -> to_executorch.

The partitioner is XNNPACK (CPU, Android and iOS) or, with ``backend = "coreml"`` in
``[export.options.executorch]``, the Core ML delegate for iOS: that .pte builds here but runs only
where ExecuTorch has its Core ML backend (macOS/iOS), so on Linux its host run is skipped.
Operators a delegate does not take run in ExecuTorch's portable kernels, which are much slower:
the manifest counts them, and the exporter warns about compute operators left there.
The host runner is ``executorch.runtime``, the same C++ runtime that runs on the phone.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError, require
from edgedistill.formats.base import ExportInfo, HostRunUnavailable, dynamic_shapes, lowering_error
from edgedistill.formats.schemes import check_scheme

NAME = "executorch"
SUFFIX = ".pte"
EXTRA = "executorch"
BACKEND = "xnnpack"
BACKENDS = ("xnnpack", "coreml")
SCHEMES = ("fp32", "fp16", "int8", "int8-dynamic")
FLOAT_MODULES = True  # export() honours options["float_modules"] under int8 (used by validate --repair)
MAX_BATCH = 1024
# ops that move or reshape data rather than compute: leaving them to the portable kernels costs little
_DATA_MOVEMENT = ("getitem", "sym_size", "view", "expand", "permute", "squeeze", "slice", "select", "clone",
                  "to_copy", "to_dim_order_copy", "cat", "embedding", "alias", "t_copy", "transpose", "split",
                  "unbind", "full", "arange", "scalar_tensor", "index_select")


def missing() -> str | None:
    """None when ExecuTorch can export and run here, else the install hint."""
    try:
        require("executorch.exir", EXTRA, "ExecuTorch")
        require("executorch.runtime", EXTRA, "ExecuTorch")
    except UserError as exc:
        return str(exc)
    return None


def _coreml_delegate_problem() -> str | None:
    from executorch.runtime import Runtime

    if Runtime.get().backend_registry.is_available("CoreMLBackend"):
        return None
    return "the ExecuTorch Core ML delegate runs only on macOS/iOS (this ExecuTorch has no CoreMLBackend)"


def host_run_problem(options: dict | None = None) -> str | None:
    """Why this machine cannot run a .pte built with ``options`` (None when it can)."""
    return _coreml_delegate_problem() if (options or {}).get("backend") == "coreml" else None


def _partitioner(backend: str, scheme: str, options: dict[str, Any]):
    if backend == "coreml":
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        from edgedistill.formats.shared_coreml import compile_options

        target, precision, units = compile_options(options, scheme)
        specs = CoreMLBackend.generate_compile_specs(compute_precision=precision, compute_unit=units,
                                                     minimum_deployment_target=target)
        # mutable buffers need iOS 18; our students have none, so keep them out of the delegate
        return CoreMLPartitioner(compile_specs=specs, take_over_mutable_buffer=False)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner()


def portable_compute_ops(delegation_info: Any) -> Counter:
    """Compute operators (not data movement) that run in the portable fallback, by name."""
    frame = delegation_info.get_operator_delegation_dataframe()
    left = Counter()
    for op, count in zip(frame["op_type"], frame["occurrences_in_non_delegated_graphs"]):
        if op.startswith("aten_") and count and not any(token in op for token in _DATA_MOVEMENT):
            left[op.removeprefix("aten_")] += int(count)
    return left


def export(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, path: Path,
           calibration: dict[str, np.ndarray] | None = None, dynamic_batch: bool = True,
           options: dict | None = None) -> ExportInfo:
    """Lower ``model`` to a .pte at ``path`` with XNNPACK (or the Core ML delegate), quantized per ``scheme``.

    ``options["float_modules"]``: qualified names of submodules kept in floating point under int8.
    ``options["quantized_graph"]``: ``model`` is already a converted pt2e int8 graph (its own quantize /
    dequantize pairs, e.g. the converted QAT graph): lowered as it is, not quantized again (xnnpack, int8).
    """
    require("executorch.exir", EXTRA, "ExecuTorch")
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    from edgedistill.formats.executorch_quant import prepare
    from edgedistill.formats.xnnpack_rewrites import delegable_reshapes, with_matmul_layer_norms

    options = dict(options or {})
    options.pop("input_names", None)  # a .pte's inputs are positional
    backend = options.pop("backend", BACKEND)
    float_modules = tuple(options.pop("float_modules", ()))
    quantized_graph = bool(options.pop("quantized_graph", False))
    if quantized_graph and (backend != "xnnpack" or scheme != "int8" or float_modules):
        raise UserError("quantized_graph (a converted pt2e int8 graph) lowers to the xnnpack backend as int8 only, "
                        "without float_modules")
    if backend not in BACKENDS:
        raise UserError(f"unknown executorch backend {backend!r}; available: {', '.join(BACKENDS)}")
    check_scheme(NAME, SCHEMES, scheme)
    if backend == "xnnpack" and options:
        raise UserError(f"unknown [export.options.executorch] key(s) for xnnpack: {', '.join(sorted(options))}")
    partitioner = _partitioner(backend, scheme, options)
    if not dynamic_batch:  # a fixed batch of 1, so max_batch=1 in the manifest is the truth
        example_inputs = tuple(t[:1] for t in example_inputs)
    norms: list[str] = []
    if backend == "xnnpack" and not quantized_graph:  # XNNPACK has no layer norm: rewrite them so the graph is delegated whole
        model, norms = with_matmul_layer_norms(model)
    try:
        with torch.no_grad():
            if quantized_graph:
                lowered, shapes = model, dynamic_shapes(example_inputs, dynamic_batch, MAX_BATCH)
            else:
                lowered, shapes = prepare(model.eval(), example_inputs, scheme=scheme, backend=backend,
                                          calibration=calibration, dynamic_batch=dynamic_batch, max_batch=MAX_BATCH,
                                          float_modules=float_modules, float_norms=norms)
            program = torch.export.export(lowered, example_inputs, dynamic_shapes=shapes)
            passes = [delegable_reshapes] if backend == "xnnpack" else []
            edge = to_edge_transform_and_lower(program, partitioner=[partitioner], transform_passes=passes)
        info = get_delegation_info(edge.exported_program().graph_module)
        buffer = edge.to_executorch().buffer
    except UserError:
        raise
    except Exception as exc:  # export and lowering raise many types; each means this model does not lower
        raise lowering_error(f"{NAME} ({backend})", exc) from None
    Path(path).write_bytes(buffer)
    left = portable_compute_ops(info)
    bound = _planned_batch(Path(path)) if dynamic_batch else 1
    return ExportInfo(
        path=Path(path), backend_version=_version(), backend=backend,
        delegated_ops=info.num_delegated_nodes, portable_ops=info.num_non_delegated_nodes,
        portable_compute_ops=sum(left.values()), dynamic_batch=dynamic_batch, max_batch=bound,
        details={"delegated_subgraphs": info.num_delegated_subgraphs, "portable_compute_ops": dict(left)},
    )


def _version() -> str:
    from importlib.metadata import version

    return version("executorch")


def _set_threads(threads: int) -> int:
    """Size XNNPACK's thread pool (one per process in ExecuTorch, by default as many threads as cores);
    returns the threads it now has."""
    from executorch.extension.pybindings import _portable_lib as binding

    if binding._threadpool_get_thread_count() != threads:
        binding._unsafe_reset_threadpool(threads)  # "unsafe" only while another thread is running a model
    return int(binding._threadpool_get_thread_count())


def _planned_batch(path: Path) -> int | None:
    """The largest batch the program accepts: its memory plan's upper bound for the first input's
    batch axis. It can be far below the bound asked of torch.export (a MobileNetV2 at 224²: 15, not
    1024), and a larger batch makes the runtime fail, so manifests and runners use this one."""
    from executorch.runtime import Runtime

    try:
        sizes = Runtime.get().load_program(path).metadata("forward").input_tensor_meta(0).sizes()
    except Exception:  # a program without inputs or metadata: no bound to read
        return None
    return int(sizes[0]) if len(sizes) else None


class PteRunner:
    """Runs a .pte's ``forward`` in the ExecuTorch runtime (the same C++ runtime as on device).

    The call path is kept at the runtime's floor (a tiny model's call is mostly overhead): the
    method is resolved once, outputs are not cloned by the runtime (they live in the program's
    memory plan until the next call, so the one copy made here is the only one), and
    ``max_batch`` is clamped to what the program's memory plan accepts.
    """

    def __init__(self, path: Path, max_batch: int | None = None, threads: int = 1):
        require("executorch.runtime", EXTRA, "ExecuTorch")
        from executorch.runtime import Runtime

        self.threads = _set_threads(threads)

        runtime = Runtime.get()
        try:
            self._program = runtime.load_program(Path(path))
        except Exception as exc:  # the runtime raises RuntimeError/ValueError for bad programs
            raise UserError(f"ExecuTorch cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
        problem = _coreml_delegate_problem() if b"CoreMLBackend" in Path(path).read_bytes() else None
        if problem:  # the program itself loaded, so the file is sound; only its delegate cannot run here
            raise HostRunUnavailable(problem)
        try:
            method = self._program.load_method("forward")
        except Exception as exc:
            raise UserError(f"ExecuTorch cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
        sizes = method.metadata.input_tensor_meta(0).sizes() if method.metadata.num_inputs() else ()
        bound = int(sizes[0]) if len(sizes) else None
        self.max_batch = min(b for b in (max_batch, bound) if b) if (max_batch or bound) else None
        # Method.execute always clones its outputs; the binding underneath can hand them over as they are
        self._call = getattr(method, "_method", None)
        self._method = method

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        if len(inputs) == 1 and self._call is not None:  # the common case, without building generators
            x = inputs[0]
            tensor = torch.from_numpy(x if x.flags.c_contiguous else np.ascontiguousarray(x))
            # the output aliases the program's memory plan until the next call: one copy, here
            return self._call([tensor], False)[0].numpy().copy()
        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        if self._call is None:
            return self._method.execute(tensors)[0].numpy().copy()
        return self._call(tensors, False)[0].numpy().copy()


def load(path: Path, max_batch: int | None = None, threads: int = 1) -> PteRunner:
    """Load a .pte for host inference on ``threads`` XNNPACK threads (HostRunUnavailable for a Core
    ML-delegated .pte off macOS). ExecuTorch has one thread pool per process: the last load sets it."""
    return PteRunner(path, max_batch, threads)
