"""int8 repair per model x format: PTQ agreement, mixed precision (share in float, size, latency), QAT-KD.

Models (tests/int8_cases.py): the residual CNN and the TinyEncoder with a planted 1000x outlier in one
block, and a deep MLP with moderate outliers in every layer (int8 hurts everywhere). For each model
and format: export int8 (fixed batch), validate with ``--repair mixed``, then with ``--repair qat``;
agreement is top-1 against the fp32 student on the held-out split, measured in the format's runtime.

    PYTHONPATH=.:tests OMP_NUM_THREADS=1 python benchmarks/int8_repair.py [--cases cnn,encoder,mlp]
        [--formats onnx,litert,executorch] [--qat-epochs 8] [--out /tmp/int8-repair]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import int8_cases  # noqa: E402

CASES = {"cnn": int8_cases.outlier_cnn, "encoder": int8_cases.outlier_encoder, "mlp": int8_cases.wide_range_mlp}
FAST = {"validate.latency_samples": 50, "validate.measure_memory": False, "validate.plots": False}


def _config(case: dict, fmt: str, out: Path, scheme: str, repair: str, qat_epochs: int):
    from edgedistill.config import load_config

    return load_config(None, {"teacher.model": str(case["teacher"]), "student.model": str(case["student"]),
                              "data.source": case["data"], "export.formats": [fmt], "export.quantization": [scheme],
                              "export.dynamic_batch": False, "out": str(out), "validate.repair": repair,
                              "validate.qat_epochs": qat_epochs, **FAST})


def measure(case: dict, fmt: str, out: Path, qat_epochs: int) -> dict:
    """One model x format: fp32 size, PTQ, mixed repair and QAT repair, with the time of each step."""
    import edgedistill

    row: dict = {}
    fp32 = edgedistill.export(_config(case, fmt, out / "fp32", "fp32", "off", qat_epochs))[0]
    row["fp32_kib"] = sum(f.stat().st_size for f in fp32.rglob("model*") if f.is_file()) / 1024
    for strategy in ("mixed", "qat"):
        config = _config(case, fmt, out / strategy, "int8", strategy, qat_epochs)
        start = time.perf_counter()
        bundles = edgedistill.export(config)
        row["export_s"] = time.perf_counter() - start
        start = time.perf_counter()
        report = edgedistill.validate(config, bundles)
        elapsed = time.perf_counter() - start
        ptq = next(r for r in report.rows if r.path == str(bundles[0]))
        row.update(ptq_top1=ptq.vs_student["top1_agreement"], ptq_kib=(ptq.size_bytes or 0) / 1024,
                   ptq_ms=ptq.latency_ms, ptq_passed=ptq.passed)
        repair = report.repairs[-1] if report.repairs else {}
        steps = repair.get("steps") or [{}]
        row[strategy] = {"passed": repair.get("passed"), "share": repair.get("float_share"),
                         "top1": repair.get("top1_vs_student", steps[-1].get("top1_vs_student")),
                         "kib": (repair.get("size_bytes") or 0) / 1024 or None, "ms": repair.get("latency_ms"),
                         "repair_s": repair.get("seconds"), "validate_s": elapsed,
                         "culprit": (ptq.localization or {}).get("culprit")}
    return row


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cnn,encoder,mlp")
    parser.add_argument("--formats", default="onnx,litert,executorch")
    parser.add_argument("--qat-epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgedistill-int8-repair"))
    args = parser.parse_args()
    import platform

    import torch

    print(f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
          f"QAT-KD {args.qat_epochs} epochs; top-1 = agreement with the fp32 student (held-out split)\n")
    print("| model | format | PTQ top-1 | PTQ passes | culprit | mixed: passes | in float | size KiB (fp32 / PTQ / mixed) "
          "| latency ms (PTQ / mixed) | mixed step s | QAT-KD top-1 | QAT passes | QAT step s |")
    print("|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---|---:|")
    for name in args.cases.split(","):
        case = CASES[name](args.out / name)
        for fmt in args.formats.split(","):
            r = measure(case, fmt, args.out / name / fmt, args.qat_epochs)
            m, q = r["mixed"], r["qat"]
            print(f"| {name} | {fmt} | {r['ptq_top1']:.1%} | {r['ptq_passed']} | {m['culprit']} | {m['passed']} "
                  f"| {_fmt(m['share'], '.0%')} | {r['fp32_kib']:.1f} / {r['ptq_kib']:.1f} / {_fmt(m['kib'], '.1f')} "
                  f"| {_fmt(r['ptq_ms'], '.3f')} / {_fmt(m['ms'], '.3f')} | {_fmt(m['repair_s'], '.1f')} "
                  f"| {_fmt(q['top1'], '.1%')} | {q['passed']} | {_fmt(q['repair_s'], '.1f')} |", flush=True)


if __name__ == "__main__":
    main()
