"""The bundle an app loads: ``model.<ext>``, ``manifest.json`` and ``golden/golden.npz``.

One schema (``Manifest``) is used by every writer and reader. ``golden.npz`` holds held-out
inputs (one array per model input, named as in the manifest; ``y`` when labels exist) with the teacher's and the fp32 student's
probabilities (``teacher_probs``, ``student_probs``), for validation on a device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from edgedistill.errors import UserError
from edgedistill.fileio import sha256_file

MANIFEST = "manifest.json"
GOLDEN = "golden/golden.npz"
SCHEMA_VERSION = 1


class TensorSpec(BaseModel):
    """One model input or output. ``shape[0]`` is ``"batch"`` when the batch dimension is dynamic."""

    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int | str]
    dtype: str


class Manifest(BaseModel):
    """Everything an app or the validator needs to know about one exported artifact."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    format: str
    backend: str
    quantization: str
    model_file: str
    sha256: str
    size_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    output_meaning: str = "logits: apply softmax for class probabilities"
    num_classes: int
    labels: list[str] | None = None
    preprocessing: dict[str, Any] = {}
    temperature: float | None = None
    dynamic_batch: bool = False
    max_batch: int | None = None
    delegation: dict[str, int | None] = {}
    host_run: dict[str, str] = {}  # {"status": "ran" | "skipped", "reason": ...}: was the artifact run back at export
    versions: dict[str, str] = {}
    golden: dict[str, Any] = {}
    student: dict[str, Any] = {}
    float_modules: list[str] = []  # submodules kept in floating point in a quantized artifact (validate --repair)
    # quantized artifacts: quantizable modules, those kept in float, their share, and the scheme mix in words
    precision: dict[str, Any] = {}


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` into a (temporary) bundle folder."""
    (Path(folder) / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def write_golden(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the golden inputs and reference probabilities."""
    path = Path(folder) / GOLDEN
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def read_bundle(folder: str | Path, verify: bool = True) -> tuple[Manifest, Path]:
    """Read and check a bundle: manifest parses, model file exists and matches its sha256."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"bundle not found: {folder} is not a folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"bundle {folder} has no {MANIFEST}")
    try:
        manifest = Manifest.model_validate(json.loads(manifest_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise UserError(f"bundle {folder}: {MANIFEST} is invalid: {str(exc).splitlines()[0][:200]}") from None
    model_path = folder / manifest.model_file
    if not model_path.exists():  # a file, or a folder for a Core ML .mlpackage
        raise UserError(f"bundle {folder} is missing its model file {manifest.model_file}")
    if verify and sha256_file(model_path) != manifest.sha256:
        raise UserError(f"bundle {folder}: {manifest.model_file} does not match the sha256 in {MANIFEST} (modified?)")
    return manifest, model_path


def read_golden(folder: str | Path) -> dict[str, np.ndarray]:
    """The golden arrays of a bundle."""
    path = Path(folder) / GOLDEN
    if not path.is_file():
        raise UserError(f"bundle {folder} has no {GOLDEN}")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
