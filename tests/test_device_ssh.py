"""`edgedistill bench` over ssh against a real OpenSSH server on 127.0.0.1 with throwaway keys.

The 'board' is this machine, so the numbers are labelled fake-local; the transport (BatchMode, key
file, host-key checking, scp, remote exit status) is the real one.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from edgedistill.bundle import read_bundle

SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on 127.0.0.1:<free high port> accepting one throwaway key; yields (url, key, known_hosts)."""
    if SSHD is None or not shutil.which("ssh") or not shutil.which("scp"):
        pytest.skip("OpenSSH server not installed (Debian: apt-get install -y openssh-server)")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
    elif not Path("/run/sshd").is_dir():
        pytest.skip("sshd needs /run/sshd, which only root can create here")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPidFile {d / 'sshd.pid'}\nSubsystem sftp internal-sftp\n")
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join((d / 'host.pub').read_text().split()[:2])}\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded wait for the listening socket
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if server.poll() is not None:
            pytest.fail(f"sshd did not start: {server.stderr.read()}")
        time.sleep(0.1)
    yield f"ssh://{getpass.getuser()}@127.0.0.1:{port}", d / "client", known
    server.terminate()
    server.wait(timeout=10)


def ssh_args(sshd, out: Path) -> list:
    url, key, known = sshd
    return ["--device", url, "--identity", key, "--known-hosts", known, "--remote-python", sys.executable,
            "--remote-dir", str(out.parent / "board tmp"), "--out", out]


@pytest.mark.slow
def test_ssh_bench_end_to_end(tmp_path, sshd, demo_out):
    bundles = sorted((demo_out / "bundles").iterdir())
    out = tmp_path / "out"
    # one process per bundle: several processes are the adb test's job, each costs a runtime import here
    proc = run_cli("bench", *bundles, *ssh_args(sshd, out), "--warmup", "2", "--runs", "8", "--processes", "1",
                   timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["passed"] and report["measured_on"] == "fake-local"
    assert report["device"]["transport"] == "ssh" and report["device"]["cores"] >= 1
    for result, folder in zip(report["results"], bundles):
        manifest, _ = read_bundle(folder)
        assert result["runner"] == "python" and result["model_sha256"] == manifest.sha256
        assert result["latency_ms"]["n"] == 8 and len(result["processes"]) == 1 and all(result["latency_ms"][k] is not None for k in
                                                      ("min", "median", "mean", "p90", "p99", "std"))
        assert result["load_ms"] > 0 and result["first_inference_ms"] > 0 and result["peak_memory_mb"] is not None
        assert result["validation"]["passed"] and result["remote_removed"]
        assert result["thermal_before"] is not None and result["thermal_after"] is not None
    assert not (tmp_path / "board tmp").exists(), "remote folder left behind"


def test_ssh_refused_key_is_one_line_exit_2(tmp_path, sshd, demo_out):
    url, _, known = sshd
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    bundle = sorted((demo_out / "bundles").iterdir())[0]
    proc = run_cli("bench", bundle, "--device", url, "--identity", stranger, "--known-hosts", known,
                   "--out", tmp_path / "out", "--timeout", "30")
    assert_one_line_error(proc, f"device {url}", "step preflight (connect)", "Permission denied")
