"""Every ExecuTorch scheme (and Core ML conversion) on three models: export time, file size, latency,
and how much of the graph XNNPACK really takes.

Run: ``.venv/bin/python benchmarks/executorch_schemes.py [--out benchmarks/results/executorch_schemes.json]``

One run on one machine, so compare within a model: ``latency ÷ fp32`` says which schemes XNNPACK
accelerates here. Core ML is converted only (it predicts on macOS alone), so it has size and export time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from export_runtime import medium_mlp  # noqa: E402

from edgedistill.fileio import size_bytes  # noqa: E402
from edgedistill.formats import coreml, executorch  # noqa: E402
from edgedistill.formats.base import NEEDS_CALIBRATION  # noqa: E402
from edgedistill.quiet import quiet  # noqa: E402
from edgedistill.validation.profile import median_latency_ms  # noqa: E402
from edgedistill.zoo import digits, text  # noqa: E402


def models() -> list[tuple[str, torch.nn.Module, dict[str, np.ndarray]]]:
    x = np.random.default_rng(0).random((512, 64), dtype=np.float32)
    tokens = text.synthetic_dataset(n=512).inputs
    return [("digits-student", digits.student(), {"x": x}), ("medium-mlp", medium_mlp(), {"x": x}),
            ("tiny-encoder", text.encoder(), tokens)]


def bench(name: str, model: torch.nn.Module, inputs: dict[str, np.ndarray], n: int, workdir: Path) -> list[dict]:
    model.eval()
    example = tuple(torch.as_tensor(v[:2]) for v in inputs.values())
    calibration = {k: v[:256] for k, v in inputs.items()}
    rows = []
    with torch.no_grad():
        eager = median_latency_ms(lambda *a: model(*(torch.from_numpy(v) for v in a)), inputs, n)
    rows.append({"model": name, "runtime": "pytorch-eager", "quantization": "fp32", "latency_ms": eager})
    # Core ML int8 is left out: ~100 s of CPU per export (see docs/formats-coreml-executorch.md)
    coreml_schemes = tuple(s for s in coreml.SCHEMES if s != "int8")
    for module, schemes in ((executorch, executorch.SCHEMES), (coreml, coreml_schemes)):
        for scheme in schemes:
            path = workdir / f"{name}-{module.NAME}-{scheme}{module.SUFFIX}"
            start = time.perf_counter()
            with quiet():
                info = module.export(model, example, scheme=scheme, path=path, options={},
                                     calibration=calibration if scheme in NEEDS_CALIBRATION else None)
            row = {"model": name, "runtime": module.NAME, "quantization": scheme,
                   "export_s": round(time.perf_counter() - start, 2), "size_bytes": size_bytes(path),
                   "delegated_ops": info.delegated_ops, "portable_compute_ops": info.portable_compute_ops,
                   "latency_ms": None}
            if module is executorch:
                with quiet():
                    row["latency_ms"] = median_latency_ms(module.load(path, executorch.MAX_BATCH), inputs, n)
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| model | runtime | scheme | export | size | latency / sample | ÷ ET fp32 | delegated / portable compute ops |",
           "|---|---|---|---|---|---|---|---|"]
    base = {r["model"]: r["latency_ms"] for r in rows if r["runtime"] == "executorch" and r["quantization"] == "fp32"}
    for r in rows:
        lat = r["latency_ms"]
        out.append(" | ".join([
            f"| {r['model']}", r["runtime"], r["quantization"], f"{r['export_s']:.1f} s" if "export_s" in r else "—",
            f"{r['size_bytes'] / 1024:.1f} KiB" if r.get("size_bytes") else "—",
            "— (macOS only)" if lat is None else f"{lat * 1000:.0f} µs",
            "—" if lat is None else f"{lat / base[r['model']]:.2f}",
            "—" if r.get("delegated_ops") is None else f"{r['delegated_ops']} / {r['portable_compute_ops']}"]) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "executorch_schemes.json")
    parser.add_argument("--n", type=int, default=300, help="timed single-sample calls per artifact")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, inputs in models():
            rows += bench(name, model, inputs, args.n, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "torch_threads": torch.get_num_threads()}, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
