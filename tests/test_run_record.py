"""The run record distill/export leave in the output folder (``run.json``) is input like any file.

The flagless flow it enables runs end to end in tests/test_minilm_pipeline.py (and the README lines);
here: a malformed record, a record naming files that moved, and a copied record that tries to make a
checkpoint's factory trusted each give one line, exit 2, naming the flag to pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from conftest import assert_one_line_error, run_cli


@pytest.fixture
def state(tmp_path, monkeypatch) -> dict:
    """A private key folder for records signed in this test (the CLI children get it through the env)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("EDGEDISTILL_STATE_DIR", str(folder))
    return {"EDGEDISTILL_STATE_DIR": str(folder)}


def _record(out: Path, **fields) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    record = {"kind": "edgedistill-run", "version": 1, "student": "student.pt", "teacher": "teacher.pt",
              "data": {"source": "digits"}, "data_source_is_path": False, "temperature": 4.0, "target": None,
              "bundles": [], "trust_factories": [], **fields}
    (out / "run.json").write_text(json.dumps(record))
    return out / "run.json"


@pytest.mark.parametrize("content", ["{not json", json.dumps(["a list"]), json.dumps({"kind": "edgedistill-run", "version": 99}),
                                     json.dumps({"kind": "edgedistill-run", "version": 1, "data": {"seed": "x"}})])
def test_a_malformed_record_is_one_line_naming_the_flags(tmp_path, content, state):
    out = tmp_path / "edgedistill-out"
    out.mkdir()
    (out / "run.json").write_text(content)
    for verb in ("export", "validate"):
        proc = run_cli(verb, "--target", "android", cwd=tmp_path, env=state)
        assert_one_line_error(proc, "run.json is not a valid run record", "--student")


def test_explicit_flags_win_over_a_malformed_record(tmp_path, state):
    out = tmp_path / "edgedistill-out"
    _record(out, student=7)
    proc = run_cli("export", "--student", "nowhere.pt", "--teacher", "t.pt", "--data", "digits", cwd=tmp_path, env=state)
    assert_one_line_error(proc, "nowhere.pt")  # the flags were used, the record not read


def test_a_moved_checkpoint_or_data_file_names_its_flag(tmp_path, state):
    out = tmp_path / "edgedistill-out"
    _record(out)
    assert_one_line_error(run_cli("export", cwd=tmp_path, env=state), "student.pt", "recorded in", "--student PATH")
    (out / "student.pt").write_bytes(b"")
    (out / "teacher.pt").write_bytes(b"")
    _record(out, data={"source": str(tmp_path / "text.jsonl")}, data_source_is_path=True)
    for verb in ("export", "validate"):
        assert_one_line_error(run_cli(verb, cwd=tmp_path, env=state), "text.jsonl", "missing", "--data PATH")


def test_validate_without_bundles_names_what_to_pass(tmp_path, state):
    assert_one_line_error(run_cli("validate", "--out", tmp_path / "o", cwd=tmp_path, env=state), "no BUNDLE given")


def test_only_a_record_this_user_signed_can_trust_a_factory(tmp_path, state):
    """A checkpoint naming an untrusted factory: refused under a copied (unsigned) record, called under a signed one."""
    from edgedistill.config import load_config
    from edgedistill.modelref import save_checkpoint
    from edgedistill.run_record import write

    out = tmp_path / "edgedistill-out"
    for role in ("student", "teacher"):
        save_checkpoint(nn.Linear(64, 10), out / f"{role}.pt", "evilpkg.models:build")
    _record(out, trust_factories=["evilpkg.models"])
    assert_one_line_error(run_cli("export", cwd=tmp_path, env=state), "evilpkg.models:build", "--trust-factory")
    config = load_config(None, {"out": str(out), "teacher.model": "evilpkg.models:build"})  # named for that run
    write(config, student=out / "student.pt", teacher=out / "teacher.pt")
    proc = run_cli("export", cwd=tmp_path, env=state)
    assert proc.returncode == 2 and "evilpkg" in proc.stderr and "--trust-factory" not in proc.stderr, proc.stderr
