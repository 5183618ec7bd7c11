"""ONNX and LiteRT on the host, in one run: export time, file size, median latency per sample and
agreement with the fp32 PyTorch student, for every scheme, on the digits student and the TinyEncoder.

Run: ``python benchmarks/formats_onnx_litert.py`` (about 3 minutes on 2 cores). Latency is the median
single-sample call (``validation.profile.median_latency_ms``), in this process, after warm-up.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgedistill.data import load_dataset, split
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.exporter import calibration_set
from edgedistill.formats import get
from edgedistill.formats.base import run_batched
from edgedistill.quiet import quiet
from edgedistill.validation.metrics import compare
from edgedistill.validation.profile import median_latency_ms
from edgedistill.zoo import digits, text

VARIANTS = [("onnx", "fp32", False), ("onnx", "int8", False), ("onnx", "int8-dynamic", False),
            ("litert", "fp32", False), ("litert", "fp16", False), ("litert", "int8", False),
            ("litert", "int8", True), ("litert", "int8-dynamic", False)]


def _models():
    torch.manual_seed(0)
    d = split(load_dataset("digits"), 0.25, 0.1, 0)
    teacher, student = digits.teacher(), digits.student()
    train(teacher, d.train, val=d.val, epochs=10, lr=3e-3, desc="teacher")
    train(student, d.train, teacher=teacher, val=d.val, epochs=15)
    t = split(text.synthetic_dataset(), 0.25, 0.1, 0)
    encoder = text.encoder()
    train(encoder, t.train, val=t.val, epochs=6, lr=3e-3)
    return {"digits student": (student.eval(), d), "TinyEncoder": (encoder.eval(), t)}


def main() -> None:
    """Print one Markdown table row per (model, format, scheme)."""
    torch.set_num_threads(1)
    print("| model | format | scheme | export s | size KiB | latency µs/sample | top-1 vs fp32 student | max abs dp |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name, (model, splits) in _models().items():
        sample = splits.test.inputs
        reference = predict_logits(model, sample).numpy()
        with torch.no_grad():
            eager = median_latency_ms(lambda *a: model(*(torch.from_numpy(v) for v in a)), sample, 200)
        print(f"| {name} | pytorch eager | fp32 | | | {eager * 1000:.0f} | 100.00% | 0 |")
        for fmt, scheme, int8_io in VARIANTS:
            module = get(fmt)
            path = Path(tempfile.mkdtemp()) / f"model{module.SUFFIX}"
            start = time.perf_counter()
            with quiet():
                info = module.export(model, tuple(torch.as_tensor(v[:2]) for v in sample.values()), scheme=scheme,
                                     path=path, calibration=calibration_set(splits.train, 256),
                                     options={"input_names": list(sample), "int8_io": int8_io})
            seconds = time.perf_counter() - start
            runner = module.load(path, getattr(module, "MAX_BATCH", None) if info.dynamic_batch else 1)
            agreement = compare(reference, run_batched(runner, sample))
            latency = median_latency_ms(runner, sample, 200)
            label = scheme + (" (int8 I/O)" if int8_io else "")
            print(f"| {name} | {fmt} | {label} | {seconds:.1f} | {path.stat().st_size / 1024:.1f} | "
                  f"{latency * 1000:.0f} | {agreement['top1_agreement']:.2%} | {agreement['max_abs_dp']:.4f} |")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
