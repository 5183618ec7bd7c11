"""Export stage: lower a student to each (format, quantization) and write one bundle per artifact.

Every artifact is loaded back and run in its runtime before its bundle is moved into place:
a program can pass lowering and still fail to load, and users must never receive such a file.
"""

from __future__ import annotations

import logging
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill import formats
from edgedistill.config import ArtifactSpec
from edgedistill.bundle import GOLDEN, Manifest, TensorSpec, write_golden, write_manifest
from edgedistill.data import Dataset, Inputs, take
from edgedistill.errors import UserError
from edgedistill.fileio import atomic_path, ensure_writable_dir, sha256_file, size_bytes
from edgedistill.formats.base import HostRunUnavailable
from edgedistill.formats.schemes import USES_CALIBRATION, check_scheme
from edgedistill.inference import predict_logits
from edgedistill.mixed_precision import precision_summary
from edgedistill.quiet import quiet
from edgedistill.text_preprocessing import app_preprocessing, bundle_vocabulary, write_vocabulary
from edgedistill.validation.metrics import softmax

log = logging.getLogger("edgedistill")

def calibration_set(data: Dataset, n: int, seed: int = 0) -> Inputs:
    """Up to ``n`` representative inputs drawn (seeded) from ``data``."""
    rng = np.random.default_rng(seed)
    index = rng.permutation(len(data))[: min(n, len(data))]
    return take(data.inputs, np.sort(index))


def check_requested(artifacts: list[ArtifactSpec]) -> None:
    """Fail before any work when a format or scheme is unknown or its backend is missing."""
    if not artifacts:
        raise UserError("nothing to export: give at least one format and one quantization scheme")
    for spec in artifacts:
        module = formats.get(spec.format)
        check_scheme(spec.format, module.SCHEMES, spec.quantization)
        with quiet():  # importing a backend prints warnings of its own
            problem = module.missing()
        if problem:
            raise UserError(problem)


def export_bundle(student: nn.Module, spec: ArtifactSpec, *, out_dir: Path, sample: Inputs,
                  calibration: Inputs | None, golden: dict[str, np.ndarray], info: dict[str, Any],
                  dynamic_batch: bool = True, vocab: list[str] | None = None,
                  precision_of: nn.Module | None = None) -> Path:
    """Export one artifact and write its bundle folder atomically; returns the folder.

    ``vocab``: the tokenizer vocabulary an app needs (written as ``tokenizer/vocab.txt``);
    ``precision_of``: the module whose quantizable modules the manifest counts (default ``student``; the
    eager student when ``student`` is a converted graph)."""
    fmt_name, scheme, options = spec.format, spec.quantization, spec.options
    module = formats.get(fmt_name)
    # a static program takes exactly the example's batch, which the manifest then declares as 1
    example = tuple(torch.as_tensor(v[: 2 if dynamic_batch else 1]) for v in sample.values())
    with torch.no_grad():
        n_classes = int(student(*example).shape[-1])
    final = Path(out_dir) / spec.bundle_name
    with atomic_path(final, is_dir=True) as tmp:
        model_path = tmp / f"model{module.SUFFIX}"
        with quiet():
            result = module.export(student, example, scheme=scheme, path=model_path, calibration=calibration,
                                   dynamic_batch=dynamic_batch,
                                   options={**(options or {}), "input_names": list(sample)})
        if result.portable_compute_ops:  # a silent performance trap unless someone says so
            left = ", ".join(f"{op} x{n}" for op, n in result.details.get("portable_compute_ops", {}).items())
            log.warning("warning: %s %s: %d compute op(s) not delegated to %s, running in slow portable kernels: %s",
                        fmt_name, scheme, result.portable_compute_ops, result.backend or module.BACKEND, left)
        # the program's own bound wins over the format's nominal one (a lowered program may accept fewer)
        max_batch = (result.max_batch or module.MAX_BATCH) if result.dynamic_batch else 1
        host_run = _run_back(module, model_path, max_batch, sample, n_classes, f"{fmt_name} {scheme}")
        write_golden(tmp, golden)
        if vocab is not None:
            write_vocabulary(tmp, vocab)
        batch: int | str = "batch" if result.dynamic_batch else 1
        dtypes = result.details.get("input_dtypes", {})  # what the model file takes, when the format narrows it
        manifest = Manifest(
            format=fmt_name, backend=result.backend or module.BACKEND, quantization=scheme, model_file=model_path.name,
            sha256=sha256_file(model_path), size_bytes=size_bytes(model_path), host_run=host_run,
            inputs=[TensorSpec(name=k, shape=[batch, *v.shape[1:]], dtype=dtypes.get(k, str(v.dtype)))
                    for k, v in sample.items()],
            outputs=[TensorSpec(name="logits", shape=[batch, n_classes],
                                dtype=result.details.get("output_dtype", "float32"))],
            num_classes=n_classes, dynamic_batch=result.dynamic_batch, max_batch=max_batch,
            delegation={"delegated_ops": result.delegated_ops, "portable_ops": result.portable_ops,
                        "portable_compute_ops": result.portable_compute_ops},
            versions={"edgedistill": version("edgedistill"), "torch": torch.__version__,
                      fmt_name: result.backend_version, "host": platform.machine()},
            golden={"file": GOLDEN, "count": int(len(golden["student_probs"]))},
            precision={} if scheme == "fp32" else {**precision_summary(
                precision_of if precision_of is not None else student, scheme, (options or {}).get("float_modules", ())),
                **result.details.get("precision", {})},
            **info,
        )
        write_manifest(tmp, manifest)
    return final


def _run_back(module, model_path: Path, max_batch: int | None, sample: Inputs, n_classes: int,
              what: str) -> dict[str, str]:
    """Run the artifact on one sample in its runtime; a skip (with its reason) where this host cannot run it."""
    from edgedistill.coreml_reference import CannotCheck

    try:
        with quiet():
            runner = module.load(model_path, max_batch)
            out = runner(*(v[:1] for v in sample.values()))
    except HostRunUnavailable as exc:
        log.info("%s: not run back here (%s)", what, exc)
        return {"status": "skipped", "reason": str(exc)}
    except CannotCheck as exc:  # the artifact may be fine for Apple's runtime; validate will fail it
        log.warning("%s: not run back here (%s)", what, exc)
        return {"status": "skipped", "reason": str(exc)}
    if out.shape != (1, n_classes):
        raise UserError(f"{what}: exported model returns shape {out.shape}, expected (1, {n_classes})")
    label = getattr(runner, "label", None)
    return {"status": "ran", "reason": f"ran {f'in the {label} ' if label else ''}on {platform.system()} "
                                       f"{platform.machine()} at export"}


def export_student(student: nn.Module, artifacts: list[ArtifactSpec], *, out_dir: Path,
                   train: Dataset, test: Dataset, calibration_samples: int, teacher: nn.Module | None = None,
                   temperature: float | None = None, dynamic_batch: bool = True, golden_count: int = 64,
                   student_info: dict[str, Any] | None = None, calibration: Inputs | None = None) -> list[Path]:
    """Export ``student`` as every artifact; golden inputs come from ``test``, calibration from ``train``
    (unless a calibration set is given)."""
    check_requested(artifacts)
    ensure_writable_dir(Path(out_dir))
    student = student.eval()
    gx = take(test.inputs, slice(0, golden_count))
    golden = {**gx, "y": None if test.y is None else test.y[:golden_count],
              "student_probs": softmax(predict_logits(student, gx).numpy()).astype(np.float32)}
    if teacher is not None:
        golden["teacher_probs"] = softmax(predict_logits(teacher, gx).numpy()).astype(np.float32)
    if test.texts is not None:  # apps check their own tokenizer against these
        golden["text"] = np.asarray(test.texts[:golden_count], dtype=np.str_)
    info = {"labels": train.labels, "preprocessing": app_preprocessing(train.preprocessing), "temperature": temperature,
            "student": dict(student_info or {})}
    vocab = bundle_vocabulary(train.preprocessing)
    if calibration is None and USES_CALIBRATION & {a.quantization for a in artifacts}:
        calibration = calibration_set(train, calibration_samples)
    written: list[Path] = []
    failed: list[str] = []  # one line per artifact that failed; every artifact is tried so the error says what works
    for spec in artifacts:
        label = spec.format + (f" ({spec.options['backend']})" if spec.options.get("backend") else "")
        try:
            written.append(export_bundle(student, spec, out_dir=Path(out_dir), sample=test.inputs,
                                         calibration=calibration, golden=golden, info=info, dynamic_batch=dynamic_batch,
                                         vocab=vocab))
        except UserError as exc:
            failed.append(f"{label} {spec.quantization}: {exc}")
    if failed:  # the failed artifacts left nothing behind (atomic); the others are complete and kept
        accepted = sorted({folder.name.split("-")[1] for folder in written})  # student-<format>-...
        hint = (f"; formats that accepted the model (bundles written): {', '.join(accepted)} "
                f"({', '.join(folder.name for folder in written)})" if written else "; no bundle written")
        raise UserError("; ".join(failed) + hint)
    return written
