"""Latency and size of the same student on every host runtime, fp32 vs int8, against eager PyTorch.

Run: ``.venv/bin/python benchmarks/export_runtime.py [--out benchmarks/results/export_runtime.json]``

Everything is measured in one run on one machine, so the ratios are what matter (absolute numbers
move with machine load). Two models: the demo's digits student (tiny: runtime overhead dominates) and
a medium MLP (1.2 M parameters: compute dominates, which is where quantization pays off).

Targets (issue 4): on ExecuTorch, int8/fp32 latency <= 0.5 and size <= 0.3; the default Android
artifact (first int8 artifact of ``--target android``) no slower than the fastest raw runtime.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill import formats
from edgedistill.data import load_dataset
from edgedistill.formats.base import NEEDS_CALIBRATION
from edgedistill.quiet import quiet
from edgedistill.target_profiles import load_profile
from edgedistill.validation.profile import median_latency_ms
from edgedistill.zoo import digits


def medium_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def bench_model(name: str, model: nn.Module, x: np.ndarray, n: int, workdir: Path) -> list[dict]:
    model.eval()
    inputs = {"x": x}
    rows = []
    with torch.no_grad():
        eager = median_latency_ms(lambda a: model(torch.from_numpy(a)), inputs, n)
    state = {k: v for k, v in model.state_dict().items()}
    torch.save(state, workdir / f"{name}.pt")
    rows.append({"model": name, "runtime": "pytorch-eager", "quantization": "fp32", "latency_ms": eager,
                 "size_bytes": (workdir / f"{name}.pt").stat().st_size})
    example = (torch.as_tensor(x[:2]),)
    for fmt in formats.names():
        module = formats.get(fmt)
        with quiet():
            if module.missing() or getattr(module, "host_run_problem", lambda o: None)({}):
                continue
        for scheme in ("fp32", "int8"):
            if scheme not in module.SCHEMES:
                continue
            path = workdir / f"{name}-{fmt}-{scheme}{module.SUFFIX}"
            start = time.perf_counter()
            with quiet():
                info = module.export(model, example, scheme=scheme, path=path, dynamic_batch=True, options={},
                                     calibration={"x": x[:256]} if scheme in NEEDS_CALIBRATION else None)
                runner = module.load(path, None if info.dynamic_batch else 1)
                latency = median_latency_ms(runner, inputs, n)
            rows.append({"model": name, "runtime": fmt, "quantization": scheme, "latency_ms": latency,
                         "size_bytes": path.stat().st_size if path.is_file() else None,
                         "export_s": time.perf_counter() - start})
    return rows


def summarize(rows: list[dict]) -> list[str]:
    lines = []
    for model in sorted({r["model"] for r in rows}):
        mine = {(r["runtime"], r["quantization"]): r for r in rows if r["model"] == model}
        et32, et8 = mine.get(("executorch", "fp32")), mine.get(("executorch", "int8"))
        if et32 and et8:
            lines.append(f"{model}: ExecuTorch int8/fp32 latency {et8['latency_ms'] / et32['latency_ms']:.2f} "
                         f"(target <= 0.5), size {et8['size_bytes'] / et32['size_bytes']:.2f} (target <= 0.3)")
        android = next(a for a in load_profile("android", check_formats=False).artifacts if a.quantization == "int8")
        ours = mine.get((android.format, android.quantization))
        raw = [r for (rt, q), r in mine.items() if q == "fp32"]
        if ours and raw:
            fastest = min(raw, key=lambda r: r["latency_ms"])
            lines.append(f"{model}: default Android artifact ({android.format} {android.quantization}) "
                         f"{ours['latency_ms'] * 1000:.0f} µs vs fastest raw fp32 runtime ({fastest['runtime']}) "
                         f"{fastest['latency_ms'] * 1000:.0f} µs: ratio {ours['latency_ms'] / fastest['latency_ms']:.2f} "
                         f"(target <= 1.0)")
    return lines


def markdown(rows: list[dict]) -> str:
    out = ["| model | runtime | quantization | median latency / sample | size |", "|---|---|---|---|---|"]
    for r in rows:
        size = "—" if r["size_bytes"] is None else f"{r['size_bytes'] / 1024:.1f} KiB"
        out.append(f"| {r['model']} | {r['runtime']} | {r['quantization']} | {r['latency_ms'] * 1000:.0f} µs | {size} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "export_runtime.json")
    parser.add_argument("--n", type=int, default=300, help="timed single-sample calls per runtime")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = load_dataset("digits").x
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_model("digits-student", digits.student(), x, args.n, Path(tmp))
        rows += bench_model("medium-mlp", medium_mlp(), x, args.n, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    args.out.write_text(json.dumps({"rows": rows, "summary": summary, "torch_threads": torch.get_num_threads()},
                                   indent=2) + "\n")
    print(markdown(rows))
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
