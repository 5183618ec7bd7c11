"""Linux edge boards (Raspberry Pi, Jetson class) over OpenSSH: ``ssh`` for commands, ``scp`` for files.

Non-interactive by construction: BatchMode (no password prompts), a given identity file, a given
or default known_hosts file with ``StrictHostKeyChecking=accept-new`` (a new host is recorded, a
changed host key is refused), connect and command timeouts. The default runner is the board's own
Python runtimes (``remote_runner.py``, pushed next to the model).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

from edgedistill.device.facts import DeviceFacts, Thermal, linux_facts, linux_thermal
from edgedistill.device.transport import (Completed, DeviceError, completed, last_line, quote_argv, run_host_command,
                                          with_status_marker)
from edgedistill.errors import UserError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SshDevice:
    """One board reachable as ``user@host:port``."""

    kind = "ssh"
    default_runner = "python"

    def __init__(self, host: str, *, user: str | None = None, port: int = 22, identity: Path | None = None,
                 known_hosts: Path | None = None, python: str = "python3", timeout: float = 30.0):
        if identity is not None and not Path(identity).is_file():
            raise UserError(f"--identity {identity}: no such key file")
        self.host, self.user, self.port, self.python, self.timeout = host, user, port, python, timeout
        self.target = f"{user}@{host}" if user else host
        self.name = f"ssh://{self.target}:{port}"
        self.remote_root = "/tmp/edgedistill"
        self.options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
                        "-o", "ServerAliveCountMax=2", "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]
        if identity is not None:
            self.options += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
        if known_hosts is not None:
            self.options += ["-o", f"UserKnownHostsFile={known_hosts}"]

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "SshDevice":
        """``ssh://user@host[:port]``."""
        parts = urlsplit(url)
        try:
            port = parts.port or 22
        except ValueError:
            raise UserError(f"--device {url}: the port is not a number") from None
        if not parts.hostname or parts.path not in ("", "/"):
            raise UserError(f"--device {url}: expected ssh://user@host[:port]")
        return cls(parts.hostname, user=parts.username, port=port, **kwargs)

    def _call(self, argv: list[str], *, step: str, timeout: float) -> subprocess.CompletedProcess:
        return run_host_command(self.name, argv, step=step, timeout=timeout)

    def connect(self) -> None:
        """Check that the board answers without a password prompt."""
        self.run("true", step="preflight (connect)", timeout=self.timeout)

    def facts(self, timeout: float) -> DeviceFacts:
        """uname, CPU model, per-core max frequency; a loopback 'board' is this machine (fake-local)."""
        facts = linux_facts(self, timeout)
        facts.fake_local = self.host in LOOPBACK
        return facts

    def thermal(self, timeout: float) -> Thermal:
        """Hottest thermal zone."""
        return linux_thermal(self, timeout)

    def run(self, argv: Sequence[str] | str, *, step: str, timeout: float, check: bool = True) -> Completed:
        """Run one command line on the board (ssh passes it to the login shell as is)."""
        done = self._call(["ssh", *self.options, "-p", str(self.port), self.target, "--",
                           with_status_marker(quote_argv(argv))], step=step, timeout=timeout)
        return completed(self.name, step, done, check=check, lost="connection failed")

    def _scp(self, source: str, dest: str, step: str, timeout: float) -> None:
        done = self._call(["scp", "-q", "-B", *self.options, "-P", str(self.port), source, dest],
                          step=step, timeout=timeout)
        if done.returncode != 0:
            raise DeviceError(self.name, step, last_line(done.stderr + done.stdout))

    def push(self, local: Path, remote: str, *, step: str, timeout: float) -> None:
        """Copy a file to the board (scp in its default SFTP mode: the remote path is not shell-parsed)."""
        self._scp(str(local), f"{self.target}:{remote}", step, timeout)

    def pull(self, remote: str, local: Path, *, step: str, timeout: float) -> None:
        """Copy a file from the board."""
        self._scp(f"{self.target}:{remote}", str(local), step, timeout)
        if not Path(local).is_file():
            raise DeviceError(self.name, step, f"{remote} did not arrive")
