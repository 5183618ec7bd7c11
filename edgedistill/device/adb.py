"""Android devices through the platform-tools ``adb`` command.

``adb`` comes from ``EDGEDISTILL_ADB``, then ``PATH``. Every remote command is one quoted command
line with an explicit status marker, so a remote failure is seen even on adb versions whose shell
drops the exit status; a command that loses its device mid-way (no marker) is a disconnect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from edgedistill.device.facts import DeviceFacts, Thermal, android_facts, android_thermal
from edgedistill.device.transport import (Completed, DeviceError, completed, last_line, quote_argv, run_host_command,
                                          with_status_marker)
from edgedistill.errors import UserError

REMOTE_ROOT = "/data/local/tmp/edgedistill"


def find_adb() -> str:
    """The adb executable: ``EDGEDISTILL_ADB`` if set, else ``adb`` on PATH."""
    given = os.environ.get("EDGEDISTILL_ADB")
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise UserError(f"EDGEDISTILL_ADB={given} is not an executable file")
        return given
    found = shutil.which("adb")
    if not found:
        raise UserError("adb not found: install Android platform-tools and put adb on PATH (or set EDGEDISTILL_ADB)")
    return found


def parse_devices(text: str) -> dict[str, str]:
    """``adb devices`` output -> {serial: state} (device, offline, unauthorized, ...)."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(("List of devices", "*")):
            found[parts[0]] = parts[1]
    return found


class AdbDevice:
    """One Android device; ``serial`` None means 'the only one attached'."""

    kind = "adb"
    remote_root = REMOTE_ROOT
    default_runner: str | None = None  # the format's native tool, built for Android by the user

    def __init__(self, serial: str | None = None, *, timeout: float = 30.0):
        self.adb = find_adb()
        self.serial = serial
        self.name = f"adb:{serial}" if serial else "adb"
        self.timeout = timeout

    def _adb(self, args: Sequence[str], *, step: str, timeout: float) -> subprocess.CompletedProcess:
        argv = [self.adb, *(["-s", self.serial] if self.serial else []), *args]
        return run_host_command(self.name, argv, step=step, timeout=timeout)

    def connect(self) -> None:
        """Pick the device and check that it is online and authorized."""
        listing = self._adb_plain(["devices"], step="preflight (adb devices)")
        devices = parse_devices(listing)
        if self.serial is None:
            if not devices:
                raise DeviceError(self.name, "preflight", "no device attached (adb devices lists none)")
            if len(devices) > 1:
                raise DeviceError(self.name, "preflight", f"{len(devices)} devices attached "
                                  f"({', '.join(sorted(devices))}): choose one with --device adb:SERIAL")
            self.serial = next(iter(devices))
            self.name = f"adb:{self.serial}"
        state = devices.get(self.serial)
        if state is None:
            raise DeviceError(self.name, "preflight", f"device {self.serial} is not attached "
                              f"(attached: {', '.join(sorted(devices)) or 'none'})")
        if state != "device":
            hint = {"unauthorized": "accept the USB debugging prompt on the phone",
                    "offline": "reconnect the cable or restart adb (adb kill-server)"}.get(state, "check the connection")
            raise DeviceError(self.name, "preflight", f"device is {state}: {hint}")
        got = self._adb(["get-state"], step="preflight (get-state)", timeout=self.timeout)
        if got.returncode != 0 or got.stdout.strip() != "device":
            raise DeviceError(self.name, "preflight (get-state)", last_line(got.stderr + got.stdout))

    def facts(self, timeout: float) -> DeviceFacts:
        """getprop, per-core max frequency."""
        return android_facts(self, timeout)

    def thermal(self, timeout: float) -> Thermal:
        """``dumpsys thermalservice`` status."""
        return android_thermal(self, timeout)

    def _adb_plain(self, args: Sequence[str], *, step: str) -> str:
        # `adb devices` must not carry -s: it lists every device
        try:
            done = subprocess.run([self.adb, *args], capture_output=True, text=True, errors="replace",
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeviceError(self.name, step, f"timed out after {self.timeout:g} s") from None
        if done.returncode != 0:
            raise DeviceError(self.name, step, last_line(done.stderr + done.stdout))
        return done.stdout

    def run(self, argv: Sequence[str] | str, *, step: str, timeout: float, check: bool = True) -> Completed:
        """Run a command line in the device shell; its status comes back through the marker."""
        done = self._adb(["shell", with_status_marker(quote_argv(argv))], step=step, timeout=timeout)
        return completed(self.name, step, done, check=check, lost="connection lost")

    def push(self, local: Path, remote: str, *, step: str, timeout: float) -> None:
        """Copy a local file onto the device."""
        done = self._adb(["push", str(local), remote], step=step, timeout=timeout)
        if done.returncode != 0:
            raise DeviceError(self.name, step, last_line(done.stderr + done.stdout))

    def pull(self, remote: str, local: Path, *, step: str, timeout: float) -> None:
        """Copy a device file to ``local``."""
        done = self._adb(["pull", remote, str(local)], step=step, timeout=timeout)
        if done.returncode != 0 or not Path(local).is_file():
            raise DeviceError(self.name, step, last_line(done.stderr + done.stdout))
