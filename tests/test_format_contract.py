"""Every registered format module fulfils ``formats.base.Format``: a fifth format is checked here
without editing this file.

``missing()`` is checked where the backend is absent: a subprocess that has imported only the base
install (torch, numpy, pydantic) refuses every further third-party import, then imports each format
module and asks it. It must name the extra to install, and nothing beyond the base install may end
up imported.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import typing

import pytest

from edgedistill import formats
from edgedistill.formats import base
from edgedistill.formats.schemes import NEEDS_CALIBRATION, SCHEMES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTRIBUTES = typing.get_type_hints(base.Format)  # NAME, SUFFIX, ... with their types
FUNCTIONS = [name for name, value in vars(base.Format).items() if inspect.isfunction(value) and not name.startswith("_")]


@pytest.mark.parametrize("name", formats.names())
def test_module_has_every_part_of_the_contract(name):
    module = formats.get(name)
    for attribute, kind in ATTRIBUTES.items():
        assert hasattr(module, attribute), f"format {name} lacks {attribute}"
        value = getattr(module, attribute)
        assert isinstance(value, typing.get_origin(kind) or kind), f"{name}.{attribute} = {value!r} is not {kind}"
    for function in FUNCTIONS:
        assert callable(getattr(module, function, None)), f"format {name} lacks {function}()"
        want = inspect.signature(getattr(base.Format, function))
        got = inspect.signature(getattr(module, function))
        assert list(got.parameters) == list(want.parameters)[1:], f"{name}.{function}{got} differs from {want}"
    assert module.NAME == name and module.SUFFIX.startswith(".") and module.MAX_BATCH >= 1
    assert set(module.SCHEMES) <= set(SCHEMES), f"{name} exports schemes outside the vocabulary"
    assert "fp32" in module.SCHEMES
    problem = module.host_run_problem({})
    assert problem is None or isinstance(problem, str)


def test_every_scheme_in_the_vocabulary_is_exported_by_some_format():
    exported = {s for name in formats.names() for s in formats.get(name).SCHEMES}
    assert exported == set(SCHEMES)  # config offers (and tolerates) only what some format builds
    assert NEEDS_CALIBRATION <= set(SCHEMES)


def test_callers_get_one_error_for_an_unsupported_scheme(tmp_path):
    from edgedistill.config import ArtifactSpec
    from edgedistill.errors import UserError
    from edgedistill.exporter import check_requested

    for name in formats.names():
        with pytest.raises(UserError, match=f"format {name} does not support quantization 'int4-weight'; supported: fp32"):
            check_requested([ArtifactSpec(format=name, quantization="int4-weight")])


_ABSENT_BACKEND = r"""
import importlib, importlib.abc, json, sys
import numpy, pydantic, torch  # the base install: everything after this counts as a backend
import edgedistill.formats.base

base_install = {m.partition(".")[0] for m in sys.modules} | set(sys.stdlib_module_names)
refused = []

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.partition(".")[0] not in base_install:
            refused.append(fullname)
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

sys.meta_path.insert(0, Absent())
answers = {}
for name in sys.argv[1:]:
    refused.clear()
    module = importlib.import_module(f"edgedistill.formats.{name}")
    hint = module.missing()
    answers[name] = {"hint": hint, "extra": module.EXTRA, "refused": list(refused)}
answers["imported"] = sorted({m.partition(".")[0] for m in sys.modules} - base_install)
print(json.dumps(answers))
"""


def test_missing_answers_with_the_install_hint_when_the_backend_is_absent():
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", _ABSENT_BACKEND, *formats.names()], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr  # importing a format module never imports its backend
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answers.pop("imported") == []  # nothing beyond the base install got in
    for name, answer in answers.items():
        assert answer["refused"], f"{name}.missing() did not look for its backend"
        assert f"pip install 'edgedistill[{answer['extra']}]'" in (answer["hint"] or ""), (name, answer)
