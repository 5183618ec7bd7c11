"""Core ML int8 (W8A8) on the pretrained MiniLM with and without SmoothQuant-style outlier migration
(``shared_coreml.smoothed_for_int8``): top-1 agreement and max |dp| against the fp32 student, through the
Core ML reference evaluator, for both MiniLM students of the tests.

    python benchmarks/coreml_int8_smoothing.py [--students topic,random]

- ``topic``: ``edgedistill.zoo.minilm:topic_classifier``; calibration ``topic_text(8, seed=0)`` (32 sentences),
  held out ``topic_text(25, seed=7)`` (100);
- ``random``: ``tests/coreml_students.minilm_student()`` (random head); calibration ``minilm_text(24)``,
  held out ``minilm_text(200, seed=1)``.
Each export is a full ``coreml.export`` (~100-200 s of CPU); results are deterministic (no timing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from coreml_students import minilm_student, minilm_text  # noqa: E402
from test_coreml_reference import topic_text  # noqa: E402

from edgedistill.formats import coreml  # noqa: E402
from edgedistill.formats.base import run_batched  # noqa: E402
from edgedistill.inference import predict_logits  # noqa: E402
from edgedistill.quiet import quiet  # noqa: E402
from edgedistill.validation import metrics  # noqa: E402


def students(names):
    for name in names:
        if name == "topic":
            from edgedistill.zoo.minilm import topic_classifier

            yield name, topic_classifier().eval(), topic_text(8, seed=0), topic_text(25, seed=7)
        else:
            yield name, minilm_student(), minilm_text(24), minilm_text(200, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="topic,random")
    args = parser.parse_args()
    for name, model, calibration, held_out in students(args.students.split(",")):
        want = predict_logits(model, held_out.inputs).numpy()
        example = tuple(torch.as_tensor(v[:2]) for v in calibration.inputs.values())
        for smoothing in (False, True):
            with tempfile.TemporaryDirectory() as tmp, quiet():
                path = Path(tmp) / "m.mlpackage"
                patch = (mock.patch.object(coreml, "smoothed_for_int8", lambda m, c, f=(): m) if not smoothing
                         else mock.patch.object(coreml, "smoothed_for_int8", coreml.smoothed_for_int8))
                with patch:
                    coreml.export(model, example, scheme="int8", path=path, calibration=dict(calibration.inputs),
                                  options={"input_names": list(calibration.inputs)})
                got = run_batched(coreml.load(path), held_out.inputs)
            measured = metrics.compare(want, got)
            print(f"{name:6s} smoothing={'on ' if smoothing else 'off'} top1 {measured['top1_agreement']:.3f} "
                  f"max|dp| {measured['max_abs_dp']:.3f} (n={len(want)})", flush=True)


if __name__ == "__main__":
    main()
