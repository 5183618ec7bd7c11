"""The JSON Schemas shared with the example apps: ``manifest.schema.json`` and ``device-outputs.schema.json``.

``manifest.schema.json`` is generated from :class:`edgedistill.bundle.Manifest`, with the documented
shapes of its free-form dictionaries (``golden``, ``preprocessing`` of kind ``wordpiece``) filled in,
because the Kotlin and Swift examples read keys inside them. Regenerate it after changing the model:

    python -m edgedistill.schemas

``device-outputs.schema.json`` is hand-written: it describes the arrays of ``outputs.npz`` (what
``edgedistill validate --device-outputs`` and ``edgedistill bench --app`` read), each as
``{"dtype": <NumPy kind>, "ndim": <int>}``, which is how :func:`describe_npz` summarizes a file.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_SCHEMA = "manifest.schema.json"
DEVICE_OUTPUTS_SCHEMA = "device-outputs.schema.json"

# Keys inside Manifest's dict-typed fields that apps read; for wordpiece, the tokenizer contract
# (edgedistill/text_preprocessing.py once merged: APP_KEYS).
_GOLDEN = {"type": "object", "properties": {"file": {"type": "string"}, "count": {"type": "integer", "minimum": 0}}}
_WORDPIECE = {
    "type": "object",
    "required": ["kind", "vocab_file", "do_lower_case", "max_length"],
    "properties": {
        "kind": {"const": "wordpiece"},
        "vocab_file": {"type": "string", "description": "bundle-relative; one token per line, id = 0-based line number"},
        "do_lower_case": {"type": "boolean"},
        "strip_accents": {"type": ["boolean", "null"], "description": "null: follow do_lower_case"},
        "tokenize_chinese_chars": {"type": "boolean"},
        "max_length": {"type": "integer", "minimum": 2},
        "padding": {"enum": ["max_length", None], "description": "null: max_length"},
        "truncation": {"type": ["boolean", "null"], "description": "null: true"},
        "cls_token": {"type": "string"}, "sep_token": {"type": "string"},
        "pad_token": {"type": "string"}, "unk_token": {"type": "string"},
    },
}


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json``, from the pydantic model plus the documented dict contents."""
    from edgedistill.bundle import Manifest

    schema = Manifest.model_json_schema()
    props = schema["properties"]
    props["golden"] = {**props["golden"], **_GOLDEN}
    props["preprocessing"] = {**props["preprocessing"],
                              "anyOf": [{"$ref": "#/$defs/WordPiecePreprocessing"},
                                        {"type": "object", "not": {"required": ["kind"], "properties": {"kind": {"const": "wordpiece"}}}}]}
    schema.setdefault("$defs", {})["WordPiecePreprocessing"] = _WORDPIECE
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def load(name: str) -> dict[str, Any]:
    """A committed schema, by file name."""
    return json.loads(files("edgedistill.schemas").joinpath(name).read_text(encoding="utf-8"))


def describe_npz(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{key: {"dtype": kind, "ndim": n}}`` for every array of an .npz (kind: float, int, string, bool)."""
    kinds = {"f": "float", "i": "int", "u": "int", "U": "string", "S": "string", "b": "bool"}
    with np.load(path, allow_pickle=False) as npz:
        return {k: {"dtype": kinds.get(npz[k].dtype.kind, npz[k].dtype.str), "ndim": npz[k].ndim} for k in npz.files}


def write_manifest_schema(path: Path | None = None) -> Path:
    """Write the generated manifest schema (into the package unless ``path`` is given)."""
    path = path or Path(__file__).with_name(MANIFEST_SCHEMA)
    path.write_text(json.dumps(manifest_schema(), indent=2) + "\n", encoding="utf-8")
    return path
