"""Latency and size of edgedistill's artifacts and runners against each runtime called directly.

Run: ``PYTHONPATH=. python benchmarks/export_runtime.py [--models digits,mobilenet] [--resolution 224]``

"Raw" rows are the runtimes exported by hand and called the way their docs show
(``raw_runtimes.py``; never edgedistill's own runners). "ours" rows are ``edgedistill.formats``
exports loaded through edgedistill's runners, as validate and select use them. Everything is timed
in one process at batch 1, interleaved round by round (``interleaved.py``), median over rounds; every
ratio prints its noise (min–max of the per-round ratios) and the header says the machine.

Targets (issue 14): digits: our fastest runner ÷ fastest direct call ≤ 1.3. MobileNetV2-like:
ExecuTorch int8 ÷ fastest raw fp32 ≤ 0.6 (int8 is the Android profile's fastest candidate here),
ExecuTorch int8 ÷ fp32 ≤ 0.5, ONNX int8 (uint8 activations, the x86 profile) ÷ fp32 ≤ 0.75,
no compute op left to ExecuTorch's portable kernels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from interleaved import fastest, interleaved, ratio, verdict  # noqa: E402
from raw_runtimes import raw_calls  # noqa: E402

from edgedistill import formats  # noqa: E402
from edgedistill.machine import describe, machine_facts  # noqa: E402
from edgedistill.quiet import quiet  # noqa: E402
from edgedistill.zoo import digits, mobilenet  # noqa: E402

# (label, format, scheme, options, dynamic batch)
OURS = {
    "digits": [("ours executorch fp32", "executorch", "fp32", {}, False),
               ("ours executorch int8", "executorch", "int8", {}, False),
               ("ours onnx fp32", "onnx", "fp32", {}, False),
               ("ours litert fp32", "litert", "fp32", {}, False),
               ("ours litert int8", "litert", "int8", {"int8_io": False}, False)],
    "mobilenet": [("ours executorch fp32", "executorch", "fp32", {}, False),
                  ("ours executorch fp32 dynamic batch", "executorch", "fp32", {}, True),
                  ("ours executorch int8", "executorch", "int8", {}, False),
                  ("ours onnx fp32", "onnx", "fp32", {}, False),
                  ("ours onnx int8 (uint8 act., x86)", "onnx", "int8", {"activation_type": "uint8"}, False),
                  ("ours onnx int8 (int8 act., ARM)", "onnx", "int8", {"activation_type": "int8"}, False),
                  # the same XNNPACK int8 kernels through LiteRT: whether this CPU gains from int8 at all
                  ("ours litert fp32", "litert", "fp32", {}, False),
                  ("ours litert int8", "litert", "int8", {"int8_io": False}, False)],
}


def our_calls(name: str, model: torch.nn.Module, x: np.ndarray, calibration: np.ndarray, workdir: Path,
              rows: dict) -> dict:
    calls = {}
    for label, fmt, scheme, options, dynamic in OURS[name]:
        module = formats.get(fmt)
        path = workdir / f"{label.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}{module.SUFFIX}"
        example = (torch.from_numpy(np.repeat(x, 2, 0) if dynamic else x),)
        with quiet():
            info = module.export(model, example, scheme=scheme, path=path, dynamic_batch=dynamic,
                                 options={**options, "input_names": ["x"]},
                                 calibration={"x": calibration} if scheme == "int8" else None)
            runner = module.load(path, info.max_batch or (1024 if info.dynamic_batch else 1))
        rows[label] = {"size_bytes": path.stat().st_size, "portable_compute_ops": info.portable_compute_ops,
                       "threads": getattr(runner, "threads", 1)}
        calls[label] = (lambda r: lambda: r(x))(runner)
    return calls


def bench(name: str, model: torch.nn.Module, x: np.ndarray, calibration: np.ndarray, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rows: dict = {}
        raw = raw_calls(model, x, Path(tmp), args.threads)
        ours = our_calls(name, model, x, calibration, Path(tmp), rows)
        rounds = interleaved({**raw, **ours}, args.rounds, args.calls)
    best_raw = fastest(rounds, list(raw))
    for label, medians in rounds.items():
        value, low, high = ratio(rounds, label, best_raw)
        rows.setdefault(label, {}).update(median_ms=statistics.median(medians), vs_fastest_raw=value,
                                          noise=[low, high], raw=label in raw)
    return {"fastest_raw": best_raw, "rows": rows, "rounds": rounds}


def targets(name: str, result: dict) -> list[str]:
    rounds, rows, best_raw = result["rounds"], result["rows"], result["fastest_raw"]
    lines = []

    def line(what: str, num: str, den: str, target: float) -> None:
        value, low, high = ratio(rounds, num, den)
        lines.append(f"| {name} | {what} | {value:.2f} ({low:.2f}–{high:.2f}) | ≤ {target} | {verdict(value, target)} |")

    if name == "digits":
        best_ours = fastest(rounds, [n for n in rows if not rows[n]["raw"]])
        line(f"our fastest runner ({best_ours}) ÷ fastest direct call ({best_raw})", best_ours, best_raw, 1.3)
        for fmt, direct in (("executorch", "executorch forward(clone_outputs=False)"),
                            ("litert", "litert set_tensor/invoke/get_tensor"),
                            ("onnx", "onnxruntime InferenceSession.run")):
            line(f"ours {fmt} fp32 ÷ {direct}", f"ours {fmt} fp32", direct, 1.3)
    else:
        line(f"ExecuTorch int8 ÷ fastest raw fp32 ({best_raw})", "ours executorch int8", best_raw, 0.6)
        line("ExecuTorch int8 ÷ ExecuTorch fp32", "ours executorch int8", "ours executorch fp32", 0.5)
        line("ONNX int8 (uint8 act.) ÷ ONNX fp32", "ours onnx int8 (uint8 act., x86)", "ours onnx fp32", 0.75)
        line("ONNX int8 (int8 act.) ÷ ONNX fp32 (for comparison)", "ours onnx int8 (int8 act., ARM)", "ours onnx fp32", 0.75)
        line("LiteRT int8 ÷ LiteRT fp32 (XNNPACK int8 on this CPU, for comparison)", "ours litert int8",
             "ours litert fp32", 0.5)
        line("ExecuTorch fp32 dynamic batch ÷ static batch 1", "ours executorch fp32 dynamic batch",
             "ours executorch fp32", 1.0)
        left = {k: v["portable_compute_ops"] for k, v in rows.items() if v.get("portable_compute_ops") is not None}
        lines.append(f"| {name} | compute ops left to portable kernels | {left} | 0 | "
                     f"{'met' if not any(left.values()) else 'missed'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,mobilenet")
    parser.add_argument("--resolution", type=int, default=224, help="MobileNetV2-like input size")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200, help="calls per round for digits (MobileNet: calls / 20)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "export_runtime.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    results, lines = {}, []
    for name in args.models.split(","):
        if name == "digits":
            from edgedistill.data import load_dataset

            data = load_dataset("digits").x
            model, x, calibration = digits.student(), data[:1].copy(), data[:256]
            results[name] = bench(name, model.eval(), x, calibration, args)
        else:
            r = args.resolution
            model = mobilenet.student().eval()
            x = rng.normal(size=(1, 3, r, r)).astype(np.float32)
            # latency does not depend on what calibration saw; a real export calibrates on real images
            calibration = rng.normal(size=(16, 3, r, r)).astype(np.float32)
            calls = args.calls
            args.calls = max(5, calls // 20)
            results[name] = bench(name, model, x, calibration, args)
            args.calls = calls
        lines += targets(name, results[name])
    facts = machine_facts(args.threads)
    print(f"machine: {describe(facts)}; {args.rounds} interleaved rounds, batch 1\n")
    for name, result in results.items():
        print(f"| {name} | median latency | × fastest raw ({result['fastest_raw']}) | noise | size |")
        print("|---|---:|---:|---|---:|")
        for label, row in sorted(result["rows"].items(), key=lambda kv: kv[1]["median_ms"]):
            size = f"{row['size_bytes'] / 1024:.1f} KiB" if row.get("size_bytes") else "—"
            print(f"| {label} | {row['median_ms'] * 1000:.1f} µs | {row['vs_fastest_raw']:.2f} | "
                  f"{row['noise'][0]:.2f}–{row['noise'][1]:.2f} | {size} |")
        print()
    print("| model | ratio | this run (noise) | target | |\n|---|---|---|---|---|")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": facts, "results": {k: {**v, "rounds": v["rounds"]} for k, v in results.items()},
                                    "targets": lines}, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
