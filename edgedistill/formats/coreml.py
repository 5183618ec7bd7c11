"""Core ML ``.mlpackage`` (ML Program): coremltools.convert of the exported, decomposed program.

Options (``[export.options.coreml]``): ``minimum_deployment_target`` (default ``"iOS17"``),
``compute_precision`` (``"fp16"``/``"fp32"``; by default fp32 for the fp32 scheme, else fp16),
``compute_units`` (``ALL``, ``CPU_ONLY``, ``CPU_AND_GPU``, ``CPU_AND_NE``; stored in the model's
metadata, since Core ML chooses units when an app loads the model) and ``weight_threshold``
(weights with fewer elements stay float; default 0: every weight is compressed).

Quantization: ``int8-weight`` (linear_quantize_weights), ``palettize8/6/4`` (palettize_weights: one
look-up table of 256/64/16 entries per weight tensor) and ``int8`` activations (iOS 17+).
Palettization is data-aware when export has a calibration set (it draws one for these schemes):
each weight counts in the k-means by the second moment of its input channel over the calibration
inputs (``E[x_j²]``; an embedding row by its token's frequency) and Linear weights are assigned to
table entries with GPTQ-style error feedback (``coreml_palettize``; coremltools' ``mode="custom"``,
still a plain ``constexpr_lut_to_dense``). Without calibration data it is coremltools' plain k-means;
the manifest's ``precision.weight_clustering`` says which ran. Measured: digits palettize4 max |Δp|
0.261 -> 0.093 (benchmarks/README.md, "Core ML data-aware palettization"). coremltools' own activation quantizer
calibrates through ``predict`` and so runs only on macOS; instead int8 is pt2e quantization with
Core ML's quantizer, calibrated in PyTorch here, and the quantized program is converted as is (integer
tensors are never quantized, the attention-mask path stays float: ``shared_coreml.MaskSafeQuantizer``).
Before pt2e, LayerNorm -> Linear activation outliers (BERT's 20-25 in a few channels of otherwise < 2.4)
move into the per-channel weights, SmoothQuant-style (``shared_coreml.smoothed_for_int8``).

A ``.mlpackage`` is a folder. Core ML predicts only on macOS; on other systems ``load`` returns the
Core ML reference evaluator (``edgedistill.coreml_reference``), which executes the saved ML Program op
by op in numpy with fp16 rounding where the program computes in fp16, so export's run-back and
``validate`` check every Core ML artifact numerically on Linux too (labelled as not Apple's runtime).
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError, require
from edgedistill.formats.base import ExportInfo, calibrated, calibration_batches, dynamic_shapes, lowering_error
from edgedistill.formats.graph_rewrites import fp16_safe_constants
from edgedistill.formats.schemes import check_scheme, require_calibration
from edgedistill.formats.shared_coreml import compile_options, int8_quantizer, smoothed_for_int8
from edgedistill.mixed_precision import check_float_modules

NAME = "coreml"
SUFFIX = ".mlpackage"
EXTRA = "coreml"
BACKEND = "mlprogram"
SCHEMES = ("fp32", "fp16", "int8", "int8-weight", "palettize8", "palettize6", "palettize4")
FLOAT_MODULES = True  # export() honours options["float_modules"] under int8 (the quantizer's per-module config)
MAX_BATCH = 1024
UNITS_KEY = "com.edgedistill.compute_units"
log = logging.getLogger("edgedistill")
_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "DOUBLE": "float64"}


def missing() -> str | None:
    """None when coremltools can convert here (prediction additionally needs macOS)."""
    try:
        require("coremltools", EXTRA, "coremltools")
    except UserError as exc:
        return str(exc)
    return None


def host_run_problem(options: dict | None = None) -> str | None:
    """None: macOS runs Core ML itself, every other system the Core ML reference evaluator."""
    return None


def runtime_label() -> str | None:
    """How reports name what runs Core ML artifacts here: None for Apple's runtime (macOS), else the
    reference evaluator's label."""
    from edgedistill.coreml_reference import LABEL

    return None if platform.system() == "Darwin" else LABEL


def _compress(mlmodel: Any, scheme: str, threshold: int, model: nn.Module | None = None,
              calibration: dict[str, np.ndarray] | None = None) -> tuple[Any, dict[str, Any]]:
    """The compressed model and what the compression was (for the manifest)."""
    from coremltools.optimize.coreml import (OpLinearQuantizerConfig, OpPalettizerConfig, OptimizationConfig,
                                             linear_quantize_weights, palettize_weights)

    if scheme == "int8-weight":
        config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=threshold)
        return linear_quantize_weights(mlmodel, OptimizationConfig(global_config=config)), {}
    if not scheme.startswith("palettize"):
        return mlmodel, {}
    nbits = int(scheme.removeprefix("palettize"))
    if model is None or not calibration or len(next(iter(calibration.values()))) == 0:
        config = OpPalettizerConfig(nbits=nbits, mode="kmeans", weight_threshold=threshold)
        return palettize_weights(mlmodel, OptimizationConfig(global_config=config)), {
            "weight_clustering": "k-means per tensor (no calibration set: every weight counts alike)"}
    from edgedistill.formats.coreml_palettize import claims_by_value, input_statistics, lut_function

    batches = calibration_batches(calibration)
    claims = claims_by_value(input_statistics(model, batches))
    used = {"weighted": 0, "plain": 0}
    config = OpPalettizerConfig(mode="custom", lut_function=lut_function(nbits, claims, used),
                                weight_threshold=threshold)
    compressed = palettize_weights(mlmodel, OptimizationConfig(global_config=config))
    samples = len(next(iter(calibration.values())))
    log.info("coreml %s: data-aware k-means on %d weight tensor(s) (E[x^2] of %d calibration samples), "
             "plain k-means on %d", scheme, used["weighted"], samples, used["plain"])
    return compressed, {"weight_clustering": f"data-aware k-means per tensor (weights by E[x_j^2] of their input "
                                             f"channel over {samples} calibration samples, GPTQ error feedback) on "
                                             f"{used['weighted']} tensors; plain k-means on {used['plain']} no "
                                             f"Linear/Conv/Embedding claims"}


def _convert(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], scheme: str, shapes: Any,
             calibration: dict[str, np.ndarray] | None, target: Any, precision: Any,
             float_modules: tuple[str, ...] = ()) -> Any:
    import coremltools as ct

    if scheme == "int8":
        require_calibration(scheme, calibration)
        model = smoothed_for_int8(model, calibration, float_modules)
        model = calibrated(model, example_inputs, int8_quantizer(float_modules), calibration, shapes)
    # the default decomposition table: coremltools has no converter for e.g. aten.new_ones
    program = torch.export.export(model, example_inputs, dynamic_shapes=shapes).run_decompositions()
    if precision == ct.precision.FLOAT16:
        fp16_safe_constants(program)
    return ct.convert(program, convert_to="mlprogram", minimum_deployment_target=target, compute_precision=precision)


def _renamed(mlmodel: Any, names: list[str]) -> Any:
    """Inputs named as the data's inputs, the output named ``logits`` (as the manifest says)."""
    import coremltools as ct

    spec = mlmodel.get_spec()
    for feature, name in zip(list(spec.description.input), names):
        if feature.name != name:
            ct.utils.rename_feature(spec, feature.name, name)
    ct.utils.rename_feature(spec, spec.description.output[0].name, "logits")
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def _check_spec(path: Path, example_inputs: tuple[torch.Tensor, ...], names: list[str]) -> dict[str, str]:
    """Reload the saved package as a spec and check its interface; returns each input's dtype."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    got = {f.name: list(f.type.multiArrayType.shape)[1:] for f in spec.description.input}
    want = {n: list(x.shape[1:]) for n, x in zip(names, example_inputs)}
    outputs = [f.name for f in spec.description.output]
    if got != want or outputs != ["logits"]:
        raise UserError(f"coreml package {path.name} has inputs {got} and outputs {outputs}, expected {want} and ['logits']")
    return _input_dtypes(spec)


def _input_dtypes(spec: Any) -> dict[str, str]:
    from coremltools.proto.FeatureTypes_pb2 import ArrayFeatureType

    return {f.name: _DTYPES[ArrayFeatureType.ArrayDataType.Name(f.type.multiArrayType.dataType)]
            for f in spec.description.input}


def export(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, path: Path,
           calibration: dict[str, np.ndarray] | None = None, dynamic_batch: bool = True,
           options: dict | None = None) -> ExportInfo:
    """Convert ``model`` to an ML Program ``.mlpackage`` folder at ``path``, compressed per ``scheme``."""
    require("coremltools", EXTRA, "coremltools")
    check_scheme(NAME, SCHEMES, scheme)
    options = dict(options or {})
    names = list(options.pop("input_names", None) or [f"input_{i}" for i in range(len(example_inputs))])
    float_modules = check_float_modules(model, options.pop("float_modules", ()))
    if float_modules and scheme != "int8":
        raise UserError("format coreml: float_modules applies to the int8 scheme only")
    target, precision, units = compile_options(options, scheme)
    shapes = dynamic_shapes(example_inputs, dynamic_batch, MAX_BATCH)
    if scheme == "int8":
        int8_quantizer()  # a missing ExecuTorch is an install hint, not a "cannot lower" error
    try:
        with torch.no_grad():
            mlmodel = _convert(model.eval(), example_inputs, scheme, shapes, calibration, target, precision,
                               float_modules)
        mlmodel, compression = _compress(mlmodel, scheme, int(options.get("weight_threshold", 0)), model.eval(),
                                         calibration)
    except UserError:
        raise
    except Exception as exc:  # converters raise many types; each means this model does not lower
        raise lowering_error(NAME, exc) from None
    mlmodel = _renamed(mlmodel, names)
    mlmodel.user_defined_metadata[UNITS_KEY] = units.name
    mlmodel.save(str(path))
    dtypes = _check_spec(Path(path), example_inputs, names)
    import coremltools as ct

    narrowed = {n: d for (n, d), x in zip(dtypes.items(), example_inputs) if d != str(x.numpy().dtype)}
    return ExportInfo(path=Path(path), backend_version=ct.__version__, dynamic_batch=dynamic_batch,
                      details={"minimum_deployment_target": target.name, "compute_precision": precision.name,
                               "compute_units": units.name, "input_dtypes": narrowed, "precision": compression})


class MLPackageRunner:
    """Runs an ``.mlpackage`` with Core ML (macOS only)."""

    label = None  # Apple's runtime: reports need no caveat
    threads = None  # Core ML schedules its own threads: no API sets them

    def __init__(self, path: Path, max_batch: int | None = None):
        import coremltools as ct

        self.max_batch = max_batch
        meta = ct.models.MLModel(str(path), skip_model_load=True)
        units = ct.ComputeUnit[meta.user_defined_metadata.get(UNITS_KEY, "ALL")]
        self._model = ct.models.MLModel(str(path), compute_units=units)
        self._inputs = list(_input_dtypes(self._model.get_spec()).items())

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        feed = {name: np.ascontiguousarray(x, dtype=dtype) for (name, dtype), x in zip(self._inputs, inputs)}
        return np.asarray(self._model.predict(feed)["logits"], dtype=np.float32)


def load_reference(path: Path, max_batch: int | None = None, threads: int = 1) -> Any:
    """The Core ML reference evaluator for an ``.mlpackage`` (any OS); ``CannotCheck`` names an op it lacks."""
    require("coremltools", EXTRA, "coremltools")
    from edgedistill.coreml_reference.evaluator import ReferenceEvaluator

    return ReferenceEvaluator(Path(path), max_batch)


def load(path: Path, max_batch: int | None = None, threads: int = 1) -> Any:
    """Load an ``.mlpackage`` for prediction: Core ML on macOS, the reference evaluator elsewhere.

    ``threads`` is accepted for the common contract but not applied: Core ML schedules its own
    threads (no API sets them) and the reference evaluator runs numpy; runners say so (``threads`` None)."""
    require("coremltools", EXTRA, "coremltools")
    if platform.system() == "Darwin":
        return MLPackageRunner(path, max_batch)
    return load_reference(path, max_batch)
