"""Import a callable named ``package.module:function``: how configs name model factories, classifier
heads and dataset factories. Model loading, Hugging Face heads and data sources all use it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from edgedistill.errors import UserError


def import_factory(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (a one-line UserError when it does not resolve)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"factory {spec!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"factory {spec!r} does not import: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(f"factory {spec!r}: module {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"factory {spec!r} is not callable")
    return target
