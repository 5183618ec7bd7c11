"""Exceptions that map to the CLI's exit codes.

Exit 2 is for anything a user can fix (bad config, missing file, wrong shape, missing backend);
exit 1 is reserved for a validation that ran and found the artifact outside tolerance.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


class ValidationFailed(Exception):
    """An artifact ran but does not agree with the teacher within tolerance: exit code 1."""

    exit_code = 1


def require(module: str, extra: str, what: str | None = None):
    """Import an optional backend, or raise a UserError that names the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = what or module
        raise UserError(
            f"{name} is not installed ({exc.name or module} missing): pip install 'edgedistill[{extra}]'"
        ) from None
