"""Format registry: one module per deployable format, imported only when that format is used.

Nothing imports a backend until its format is asked for, so a missing coremltools never breaks the
ExecuTorch path. Every format module satisfies ``edgedistill.formats.base.Format``.

Adding a fifth format takes three things:

1. one file, ``edgedistill/formats/<name>.py``, defining at module level everything in
   ``base.Format`` (``NAME`` .. ``FLOAT_MODULES``, ``missing``, ``host_run_problem``, ``export``,
   ``load``), with its backend imported inside functions only. It imports only shared modules
   (``base``, ``schemes``, ``shared_*``), never another format: a piece two formats need moves
   into a shared module. Its scheme checks are ``schemes.check_request`` (or ``check_scheme`` and
   ``require_calibration``), never a rule of its own;
2. one line in ``_REGISTRY`` below (and its extra in ``pyproject.toml``);
3. its test, ``tests/test_format_<name>.py``: export a real model per scheme, run it back in the
   runtime, bad input. ``tests/test_format_contract.py`` checks the new module against the
   contract automatically (it walks ``names()``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from edgedistill.errors import UserError

if TYPE_CHECKING:
    from edgedistill.formats.base import Format

# name -> module path; the module satisfies edgedistill.formats.base.Format
_REGISTRY: dict[str, str] = {
    "executorch": "edgedistill.formats.executorch",
    "coreml": "edgedistill.formats.coreml",
    "litert": "edgedistill.formats.litert",
    "onnx": "edgedistill.formats.onnx",
}


def names() -> list[str]:
    """Names of every registered format."""
    return sorted(_REGISTRY)


def get(name: str) -> "Format":
    """The format module for ``name``; an unknown name is a UserError listing what exists."""
    if name not in _REGISTRY:
        raise UserError(f"unknown format {name!r}; available: {', '.join(names())}")
    return cast("Format", importlib.import_module(_REGISTRY[name]))
