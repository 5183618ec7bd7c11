"""Format registry: one module per deployable format, imported only when that format is used.

Adding a format means adding one file in this package (with the attributes of ``base.Format``)
and one line in ``_REGISTRY``. Nothing imports a backend until its format is asked for, so a
missing coremltools never breaks the ExecuTorch path.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgedistill.errors import UserError

# name -> module path; the module implements edgedistill.formats.base.Format
_REGISTRY: dict[str, str] = {
    "executorch": "edgedistill.formats.executorch",
    "coreml": "edgedistill.formats.coreml",
    "litert": "edgedistill.formats.litert",
    "onnx": "edgedistill.formats.onnx",
}


def names() -> list[str]:
    """Names of every registered format."""
    return sorted(_REGISTRY)


def get(name: str) -> ModuleType:
    """The format module for ``name``; an unknown name is a UserError listing what exists."""
    if name not in _REGISTRY:
        raise UserError(f"unknown format {name!r}; available: {', '.join(names())}")
    return importlib.import_module(_REGISTRY[name])
