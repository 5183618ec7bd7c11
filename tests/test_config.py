"""Config: shipped files validate, flags override the file, --dry-run reproduces the call."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from conftest import REPO, run_cli
from edgedistill.config import PipelineConfig, dump_toml, load_config


def test_shipped_example_is_the_default_pipeline():
    assert load_config(REPO / "examples" / "digits.toml") == PipelineConfig()


def test_flags_override_file_and_dry_run_round_trips(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[distill]\ntemperature = 2.0\nepochs = 7\n[export]\nquantization = ["fp32"]\n')
    proc = run_cli("distill", "--config", cfg, "--epochs", "3", "--set", "data.seed=5", "-T", "8", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    resolved = tomllib.loads(proc.stdout)
    assert resolved["distill"]["epochs"] == 3          # flag beats file
    assert resolved["distill"]["temperature"] == 8.0   # short flag beats file
    assert resolved["data"]["seed"] == 5               # --set
    assert resolved["export"]["quantization"] == ["fp32"]  # file beats default
    again = tmp_path / "resolved.toml"
    again.write_text(proc.stdout)
    assert load_config(again) == load_config(cfg, {"distill.epochs": 3, "data.seed": 5, "distill.temperature": 8.0})
    assert not (tmp_path / "edgedistill-out").exists(), "--dry-run must not write anything"


def test_dump_is_loadable_toml():
    text = dump_toml(PipelineConfig())
    assert tomllib.loads(text)["distill"]["temperature"] == 4.0
