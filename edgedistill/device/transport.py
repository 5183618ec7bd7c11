"""What bench needs from a device connection, and the pieces adb and ssh share.

A transport runs one shell command line on the device and copies files both ways. Commands are
built from argv lists with every argument shell-quoted, so a file name with spaces, quotes or ``;``
reaches the device as one literal argument. The exit status comes back through an explicit marker
echoed after the command, because old adb shells drop the remote status.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from edgedistill.errors import UserError

if TYPE_CHECKING:
    from edgedistill.device.facts import DeviceFacts, Thermal

STATUS_MARKER = "__EDGEDISTILL_STATUS__="


class DeviceError(UserError):
    """A device step failed: one line naming the device and the step (exit 2)."""

    def __init__(self, device: str, step: str, reason: str):
        self.device, self.step, self.reason = device, step, reason
        super().__init__(f"device {device}, step {step}: {reason}")


@dataclass
class Completed:
    """A finished remote command: its exit status and its output (stdout and stderr merged)."""

    status: int
    output: str


class Transport(Protocol):
    """A connection to one device (see adb.AdbDevice and ssh.SshDevice)."""

    name: str
    kind: str
    remote_root: str
    default_runner: str | None

    def connect(self) -> None:
        """Check that the device answers (adb: attached, online, authorized; ssh: no password prompt),
        else a DeviceError that says which."""

    def facts(self, timeout: float) -> "DeviceFacts":
        """What the device is: model, OS, CPU cores and their frequencies, the big cores, thermal state."""

    def thermal(self, timeout: float) -> "Thermal":
        """The device's thermal status now (sessions wait for a normal one between bundles)."""

    def run(self, argv: Sequence[str] | str, *, step: str, timeout: float, check: bool = True) -> Completed:
        """Run a command on the device (a list is quoted, a string runs as given in its shell);
        ``step`` names it in errors. With ``check``, a non-zero exit status is a DeviceError."""

    def push(self, local: Path, remote: str, *, step: str, timeout: float) -> None:
        """Copy the local file ``local`` to ``remote`` on the device; a DeviceError when it fails."""

    def pull(self, remote: str, local: Path, *, step: str, timeout: float) -> None:
        """Copy the device file ``remote`` to ``local``; a DeviceError when it fails or nothing arrives."""


def quote_argv(argv: Sequence[str] | str) -> str:
    """One shell command line from an argv list (each argument quoted); a str is a trusted script."""
    return argv if isinstance(argv, str) else " ".join(shlex.quote(str(a)) for a in argv)


def with_status_marker(command: str) -> str:
    """Wrap a command so its output is merged and its exit status is echoed on the last line."""
    return f"{{ {command}\n}} 2>&1; echo \"{STATUS_MARKER}$?\""


def split_status(text: str) -> tuple[int | None, str]:
    """The exit status from the marker line (None when it never arrived) and the output before it."""
    text = text.replace("\r\n", "\n")
    head, sep, tail = text.rpartition(STATUS_MARKER)
    if not sep:
        return None, text
    digits = tail.strip().splitlines()[0] if tail.strip() else ""
    return (int(digits) if digits.isdigit() else None), head


def last_line(text: str, limit: int = 200) -> str:
    """The last non-empty line of tool output (where tools put the error), trimmed for a one-line message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:limit]


def run_host_command(device: str, argv: Sequence[str], *, step: str, timeout: float) -> subprocess.CompletedProcess:
    """Run a host-side tool (adb, ssh, scp) for ``device``; a timeout or a missing tool is a DeviceError."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DeviceError(device, step, f"timed out after {timeout:g} s") from None
    except OSError as exc:
        raise DeviceError(device, step, f"cannot run {argv[0]}: {exc.strerror}") from None


def completed(device: str, step: str, done: subprocess.CompletedProcess, *, check: bool, lost: str) -> Completed:
    """Read the status marker of a remote command; no marker means the connection broke (``lost``)."""
    status, output = split_status(done.stdout)
    if status is None:
        raise DeviceError(device, step, f"{lost}: " + last_line(done.stderr + done.stdout))
    if check and status != 0:
        raise DeviceError(device, step, f"exit status {status}: {last_line(output)}")
    return Completed(status, output)
