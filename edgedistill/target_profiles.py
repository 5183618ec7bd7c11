"""Device target profiles: what ``--target ios|android|linux-arm64|PATH.toml`` builds and how strictly it is checked.

A profile is data (``edgedistill/targets/<name>.toml``, shipped inside the package so it works
from an installed wheel): a list of artifacts (format, quantization scheme, format options) and
the tolerances validation applies to them. Adding a device class means adding one TOML file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from edgedistill.config import ArtifactSpec, Tolerance, _Section, format_validation_error
from edgedistill.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TargetProfile(_Section):
    """One device class."""

    name: str
    description: str = ""
    artifacts: list[ArtifactSpec] = Field(min_length=1)
    tolerances: dict[str, Tolerance] = Field(default_factory=dict)


BUILTIN = Path(__file__).parent / "targets"  # package data: present in a wheel install as in a checkout


def builtin_names() -> list[str]:
    """Names of the profiles shipped with edgedistill."""
    return sorted(p.stem for p in BUILTIN.glob("*.toml"))


def _read(name_or_path: str) -> tuple[str, dict[str, Any]]:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"target profile not found: {path}")
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            raise UserError(f"target profile {path} is not a readable TOML text file: {str(exc)[:120]}") from None
    elif name_or_path in builtin_names():
        text = (BUILTIN / f"{name_or_path}.toml").read_text(encoding="utf-8")
        where = f"target {name_or_path}"
    else:
        raise UserError(f"unknown target {name_or_path!r}; available: {', '.join(builtin_names())} "
                        f"(or a path to your own .toml)")
    try:
        return where, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where} is not valid TOML: {exc}") from None


def load_profile(name_or_path: str, check_formats: bool = True) -> TargetProfile:
    """Load and validate a profile; every artifact must name a known format and a scheme it supports."""
    where, data = _read(name_or_path)
    try:
        profile = TargetProfile.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, prefix=where)) from None
    if check_formats:
        from edgedistill import formats

        for spec in profile.artifacts:
            module = formats.get(spec.format)
            if spec.quantization not in module.SCHEMES:
                raise UserError(f"{where}: format {spec.format} does not support quantization {spec.quantization!r}; "
                                f"supported: {', '.join(module.SCHEMES)}")
    return profile


def tolerance_overrides(name_or_path: str) -> dict[str, dict[str, Any]]:
    """The profile's tolerances as plain dicts (merged under the user's own by ``load_config``)."""
    profile = load_profile(name_or_path, check_formats=False)  # a malformed profile is one line, here too
    return {k: v.model_dump(exclude_unset=True) for k, v in profile.tolerances.items()}
