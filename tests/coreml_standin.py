"""Stand-in for the Core ML format module until edgedistill/formats/coreml.py is registered: only the
part of the format contract validation uses before loading (``runnable``). Never produces results."""

import sys

NAME, SUFFIX, EXTRA, BACKEND, SCHEMES = "coreml", ".mlpackage", "coreml", "mlprogram", ("fp16",)


def runnable() -> str | None:
    """Core ML prediction needs macOS."""
    return None if sys.platform == "darwin" else "Core ML runs only on macOS"
