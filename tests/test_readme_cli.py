"""The README's CLI lines run as written and chain: distill -> export -> validate on digits.

The lines are read from README.md itself; only what the README marks as optional (``[...]``) and its
comments are dropped, ``edgedistill`` becomes this interpreter's ``-m edgedistill``, and distill gets fewer
epochs. The placeholders the lines use are made real in the working folder: ``teacher.pt`` (a trained
digits teacher), ``train.npz`` (the digits data) and ``pkg.models:small`` (a user's student factory).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

FAST = {"distill": ["--set", "distill.epochs=30"], "validate": ["--no-memory", "--no-plots"]}


def readme_lines() -> dict[str, str]:
    """The first line of each verb in the README's CLI block, keyed by verb."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## CLI\n\n```bash\n", 1)[1].split("```", 1)[0]
    lines: dict[str, str] = {}
    for line in block.splitlines():
        match = re.match(r"edgedistill\s+([\w-]+)\s", line)
        if match:
            lines.setdefault(match.group(1), line)
    return lines


def as_run(line: str) -> list[str]:
    """The README line as argv: optional ``[...]`` groups and the trailing comment dropped, globs expanded."""
    line = re.sub(r"\s+#.*$", "", line)
    line = re.sub(r"\[[^\]]*\]", "", line)
    return shlex.split(line)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, one_torch_thread):
    """A folder holding what the README's lines name: teacher.pt, train.npz and the pkg.models package."""
    from sklearn.datasets import load_digits

    from edgedistill.data import Dataset, split
    from edgedistill.distillation.trainer import train
    from edgedistill.modelref import save_checkpoint
    from edgedistill.zoo import digits

    folder = tmp_path_factory.mktemp("readme")
    bunch = load_digits()
    x, y = (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)
    np.savez(folder / "train.npz", x=x, y=y)
    splits = split(Dataset({"x": x}, y, name="train"), 0.25, 0.1, 0)
    teacher = digits.teacher()
    train(teacher, splits.train, val=splits.val, epochs=15, lr=3e-3, desc="teacher")
    save_checkpoint(teacher, folder / "teacher.pt", "edgedistill.zoo.digits:teacher")
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "models.py").write_text("from edgedistill.zoo import digits\n\n\n"
                                              "def small():\n    return digits.student()\n")
    return folder


def run_line(verb: str, workdir) -> subprocess.CompletedProcess:
    argv = as_run(readme_lines()[verb])
    assert argv[0] == "edgedistill" and argv[1] == verb
    args: list[str] = []
    for arg in argv[2:]:  # what the shell would do with edgedistill-out/bundles/*
        matches = sorted(workdir.glob(arg)) if "*" in arg else None
        args += [str(p.relative_to(workdir)) for p in matches] if matches else [arg]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "edgedistill", verb, *args, *FAST.get(verb, [])], cwd=workdir,
                          capture_output=True, text=True, env=env, timeout=900)


def test_the_readme_cli_lines_chain_as_written(workdir):
    for verb in ("distill", "export", "validate"):
        proc = run_line(verb, workdir)
        assert proc.returncode == 0, f"README line for {verb} failed:\n{proc.stdout}\n{proc.stderr}"
    out = workdir / "edgedistill-out"
    assert (out / "student.pt").is_file()
    report = json.loads((out / "report.json").read_text())
    ran = [r for r in report["rows"] if r["role"] == "artifact"]
    assert len(ran) == 2 and all(r["status"] == "pass" for r in ran) and report["passed"]


VERBS = ("demo", "distill", "calibrate", "export", "validate", "bench", "targets", "inspect-teacher")


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_takes_dry_run(verb, tmp_path, capsys):
    """The README: every verb takes --dry-run, printing the config that reproduces the call."""
    from edgedistill.cli import main

    extra = {"validate": ["b"], "bench": ["b", "--device", "adb"]}.get(verb, [])
    assert main([verb, *extra, "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert f'out = "{tmp_path / "o"}"' in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_warnings_are_quiet_unless_verbose(verbose):
    code = ("import sys, warnings\nfrom edgedistill.cli.common import setup_logging\n"
            "setup_logging(sys.argv[1] == 'v')\n"
            "warnings.warn('torch.utils._pytree._register_pytree_node is deprecated', FutureWarning)\n")
    proc = subprocess.run([sys.executable, "-c", code, "v" if verbose else "q"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert ("_pytree" in proc.stderr) == verbose, proc.stderr
