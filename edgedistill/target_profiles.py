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

from edgedistill.errors import UserError
from edgedistill.sections import ArtifactSpec, Section, Tolerance, format_validation_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TargetProfile(Section):
    """One device class."""

    name: str
    description: str = ""
    artifacts: list[ArtifactSpec] = Field(min_length=1)
    tolerances: dict[str, Tolerance] = Field(default_factory=dict)


BUILTIN = Path(__file__).parent / "targets"  # package data: present in a wheel install as in a checkout


def builtin_names() -> list[str]:
    """Names of the profiles shipped with edgedistill."""
    return sorted(p.stem for p in BUILTIN.glob("*.toml"))


def _where(name_or_path: str) -> str:
    """How errors name a profile: its path, or ``target <name>`` for a built-in one."""
    path = Path(name_or_path)
    return str(path) if path.suffix == ".toml" else f"target {name_or_path}"


def _read(name_or_path: str) -> tuple[str, dict[str, Any]]:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"target profile not found: {path}")
        text = path.read_text(encoding="utf-8")
    elif name_or_path in builtin_names():
        text = (BUILTIN / f"{name_or_path}.toml").read_text(encoding="utf-8")
    else:
        raise UserError(f"unknown target {name_or_path!r}; available: {', '.join(builtin_names())} "
                        f"(or a path to your own .toml)")
    where = _where(name_or_path)
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
        check_formats_of(profile, name_or_path)
    return profile


def check_formats_of(profile: TargetProfile, name_or_path: str) -> None:
    """A UserError unless every artifact of ``profile`` (read from ``name_or_path``) names a registered
    format and a scheme that format exports."""
    from edgedistill import formats
    from edgedistill.formats.schemes import check_scheme

    for spec in profile.artifacts:
        try:
            check_scheme(spec.format, formats.get(spec.format).SCHEMES, spec.quantization)
        except UserError as exc:
            raise UserError(f"{_where(name_or_path)}: {exc}") from None


def tolerance_overrides(profile: TargetProfile) -> dict[str, dict[str, Any]]:
    """The tolerance keys the profile sets, as plain dicts (merged under the user's own by ``load_config``)."""
    return {k: v.model_dump(exclude_unset=True) for k, v in profile.tolerances.items()}
