"""The quantization scheme vocabulary and its rules, in one place (torch-free, so config can use it).

Every format names the schemes it exports in its ``SCHEMES``, a subset of ``SCHEMES`` below, so
target profiles and tolerances can name a scheme without knowing the format. Whether a format
exports a scheme, and whether a scheme needs a calibration set, is decided here and nowhere else:
the exporter, target profiles and every format module call these functions.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from edgedistill.errors import UserError

SCHEMES: dict[str, str] = {
    "fp32": "no quantization",
    "fp16": "half-precision weights and compute",
    "int8": "static int8 weights and activations, calibrated on a calibration set",
    "int8-dynamic": "int8 weights, activations quantized at run time (no calibration)",
    "int8-weight": "weight-only int8, float compute (no calibration)",
    "palettize8": "8-bit weight palettization (Core ML)",
    "palettize6": "6-bit weight palettization (Core ML)",
    "palettize4": "4-bit weight palettization (Core ML)",
}
NEEDS_CALIBRATION = frozenset({"int8"})
# schemes that use a calibration set when one is given (weight clustering weighted by activations) and
# fall back to a data-free method without one; export draws one for them as for NEEDS_CALIBRATION
USES_CALIBRATION = NEEDS_CALIBRATION | {"palettize8", "palettize6", "palettize4"}


def check_scheme(fmt: str, supported: Sequence[str], scheme: str) -> None:
    """A UserError when format ``fmt`` (whose ``SCHEMES`` is ``supported``) does not export ``scheme``."""
    if scheme not in supported:
        raise UserError(f"format {fmt} does not support quantization {scheme!r}; supported: {', '.join(supported)}")


def require_calibration(scheme: str, calibration: Mapping[str, object] | None) -> None:
    """A UserError when ``scheme`` needs a calibration set and gets none (or an empty one)."""
    if scheme in NEEDS_CALIBRATION and (not calibration or len(next(iter(calibration.values()))) == 0):
        raise UserError(f"{scheme} needs a calibration set of representative inputs (none or empty given)")


def check_request(fmt: str, supported: Sequence[str], scheme: str, calibration: Mapping[str, object] | None) -> None:
    """Both rules: ``fmt`` exports ``scheme``, and a calibrated scheme has its calibration set."""
    check_scheme(fmt, supported, scheme)
    require_calibration(scheme, calibration)
