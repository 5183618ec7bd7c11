"""Core ML palettization before/after data-aware tables: top-1 agreement and max |Δp| against the fp32
student, through the Core ML reference evaluator (off macOS), plain k-means vs data-aware k-means.

    python benchmarks/coreml_palettize.py digits|minilm|topic palettize4[,palettize6,...] [plain,aware]

- digits: the digits student of tests/format_models.py, calibration 128 training samples, test split (450);
- minilm: tests/coreml_students.minilm_student() (pretrained MiniLM, random x20 head), calibration
  minilm_text(24) (as the heavy test), held out minilm_text(200, seed=1); env CAL=N: N calibration texts;
- topic: edgedistill.zoo.minilm:topic_classifier, calibration topic_text(8, seed=0), held out topic_text(25, seed=7).

"plain" exports without a calibration set (coremltools' k-means), "aware" with it. One JSON line per run.
Accuracy numbers: machine load changes only the export/eval seconds.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from edgedistill.exporter import calibration_set  # noqa: E402
from edgedistill.formats import coreml  # noqa: E402
from edgedistill.formats.base import run_batched  # noqa: E402
from edgedistill.inference import predict_logits  # noqa: E402
from edgedistill.validation import metrics  # noqa: E402


def student(which: str):
    """(model, held-out dataset, calibration inputs)."""
    if which == "digits":
        from format_models import trained_digits

        model, splits = trained_digits()
        return model, splits.test, calibration_set(splits.train, 128)
    if which == "minilm":
        from coreml_students import minilm_student, minilm_text

        return minilm_student(), minilm_text(200, seed=1), minilm_text(int(os.environ.get("CAL", 24))).inputs
    from test_coreml_reference import topic_text

    from edgedistill.zoo.minilm import topic_classifier

    return topic_classifier().eval(), topic_text(25, seed=7), topic_text(8, seed=0).inputs


def main() -> None:
    which, schemes = sys.argv[1], sys.argv[2].split(",")
    modes = sys.argv[3].split(",") if len(sys.argv) > 3 else ["plain", "aware"]
    model, held, calibration = student(which)
    reference = predict_logits(model, held.inputs).numpy()
    example = tuple(torch.as_tensor(v[:2]) for v in held.inputs.values())
    out = Path(tempfile.mkdtemp(prefix="coreml-palettize-"))
    for scheme in schemes:
        for mode in modes:
            start = time.time()
            path = out / f"{which}-{scheme}-{mode}.mlpackage"
            info = coreml.export(model, example, scheme=scheme, path=path,
                                 calibration=calibration if mode == "aware" else None,
                                 options={"input_names": list(held.inputs)})
            exported = time.time() - start
            measured = metrics.compare(reference, run_batched(coreml.load(path, 1024), held.inputs))
            print(json.dumps({"model": which, "scheme": scheme, "mode": mode, "n": len(reference),
                              "top1": round(measured["top1_agreement"], 4), "max_abs_dp": round(measured["max_abs_dp"], 4),
                              "export_s": round(exported, 1), "eval_s": round(time.time() - start - exported, 1),
                              "clustering": info.details.get("precision")}), flush=True)


if __name__ == "__main__":
    main()
