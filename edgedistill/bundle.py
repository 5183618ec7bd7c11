"""The bundle an app loads: ``model.<ext>``, ``manifest.json`` and ``golden/golden.npz``.

One schema (``Manifest``) is used by every writer and reader. ``golden.npz`` holds held-out
inputs (one array per model input, named as in the manifest; ``y`` when labels exist) with the teacher's and the fp32 student's
probabilities (``teacher_probs``, ``student_probs``), for validation on a device.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from edgedistill.errors import UserError
from edgedistill.fileio import sha256_file

MANIFEST = "manifest.json"
GOLDEN = "golden/golden.npz"
SCHEMA_VERSION = 1
PLAIN_NAME = re.compile(r"\w[\w.+-]*")  # model.pte, model.mlpackage: no separators, no leading dot or dash


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
    manifest_path = contained(folder, MANIFEST, "manifest")
    if not manifest_path.is_file():
        raise UserError(f"bundle {folder} has no {MANIFEST}")
    try:
        manifest = Manifest.model_validate(json.loads(manifest_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise UserError(f"bundle {folder}: {MANIFEST} is invalid: {str(exc).splitlines()[0][:200]}") from None
    if not PLAIN_NAME.fullmatch(manifest.model_file):  # it becomes a remote path and a runner argument in bench
        raise UserError(f"bundle {folder}: model_file {manifest.model_file!r} must be a plain file name inside the bundle")
    model_path = contained(folder, manifest.model_file, "model_file")
    golden_file = manifest.golden.get("file", GOLDEN)
    if not isinstance(golden_file, str) or Path(golden_file).as_posix() != GOLDEN:
        raise UserError(f"bundle {folder}: golden file {golden_file!r} must be {GOLDEN}")
    if not model_path.exists():  # a file, or a folder for a Core ML .mlpackage
        raise UserError(f"bundle {folder} is missing its model file {manifest.model_file}")
    if model_path.is_dir():  # a Core ML .mlpackage: every file in it must stay inside too
        for inner in model_path.rglob("*"):
            contained(folder, inner.relative_to(folder).as_posix(), "model_file")
    if verify and sha256_file(model_path) != manifest.sha256:
        raise UserError(f"bundle {folder}: {manifest.model_file} does not match the sha256 in {MANIFEST} (modified?)")
    return manifest, model_path


def contained(folder: Path, name: str, what: str) -> Path:
    """``folder / name``, refused (one line) unless it is a relative path that stays inside ``folder``:
    no absolute path, no ``..``, no symlink resolving outside. A manifest is input, and may be hostile."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or relative.drive:
        raise UserError(f"bundle {folder}: {what} {name!r} must be a relative path inside the bundle")
    path = Path(folder) / relative
    root = Path(folder).resolve()
    if path.resolve() != root and root not in path.resolve().parents:
        raise UserError(f"bundle {folder}: {what} {name!r} is a link that leads outside the bundle")
    return path


def read_golden(folder: str | Path, manifest: Manifest | None = None) -> dict[str, np.ndarray]:
    """The golden arrays of a bundle (a damaged, pickled or incomplete file is a one-line UserError);
    with ``manifest``, also that they hold every input it names and probabilities over its classes."""
    path = contained(Path(folder), GOLDEN, "golden file")
    if not path.is_file():
        raise UserError(f"bundle {folder} has no {GOLDEN}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise UserError(f"bundle {folder}: {GOLDEN} is damaged or holds pickled objects: {str(exc)[:160]}") from None
    if "student_probs" not in arrays:
        raise UserError(f"bundle {folder}: {GOLDEN} has no student_probs (found: {', '.join(sorted(arrays)) or 'nothing'})")
    if manifest is not None:
        missing = [spec.name for spec in manifest.inputs if spec.name not in arrays]
        if missing:
            raise UserError(f"bundle {folder}: {GOLDEN} lacks the input(s) {', '.join(missing)} its manifest names")
        for key in ("student_probs", "teacher_probs"):
            if key in arrays and arrays[key].shape[1:] != (manifest.num_classes,):
                raise UserError(f"bundle {folder}: {GOLDEN} {key} has shape {arrays[key].shape}, but the manifest "
                                f"says {manifest.num_classes} classes")
    return arrays
