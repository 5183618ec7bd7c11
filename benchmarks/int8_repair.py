"""int8 repair per model x format: PTQ agreement, mixed precision (share in float, size, latency), cross-layer
equalization + PTQ, QAT-KD.

Models (tests/int8_cases.py): the residual CNN and the TinyEncoder with a planted 1000x outlier in one
block, a deep MLP with moderate outliers in every layer (int8 hurts everywhere; ``mlp``), and a
residual MLP with two 15-30x channels in its residual stream (``stream``: out of equalization's reach). For each model
and format: export int8 (fixed batch), validate with ``--repair mixed``, ``--repair equalize`` and ``--repair qat``
(QAT-KD starts from the equalized student);
agreement is top-1 against the fp32 student on the held-out split, measured in the format's runtime.

    PYTHONPATH=.:tests OMP_NUM_THREADS=1 python benchmarks/int8_repair.py [--cases cnn,encoder,mlp]
        [--formats onnx,litert,executorch] [--qat-epochs 8] [--out /tmp/int8-repair] [--converted-epochs 40]

``--converted-epochs N`` (N > 0) then trains QAT-KD on the ``mlp`` student for N epochs and runs the
converted QAT graph itself (its learned ranges, no new calibration) in each runtime that takes it:
ExecuTorch XNNPACK (.pte), ONNX (dynamo export: QDQ), LiteRT (litert-torch); top-1 against the fp32 student.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import int8_cases  # noqa: E402

CASES = {"cnn": int8_cases.outlier_cnn, "encoder": int8_cases.outlier_encoder, "mlp": int8_cases.wide_range_mlp,
         "stream": int8_cases.residual_stream_mlp}
FAST = {"validate.latency_samples": 50, "validate.measure_memory": False, "validate.plots": False}


def _config(case: dict, fmt: str, out: Path, scheme: str, repair: str, qat_epochs: int):
    from edgedistill.config import load_config

    return load_config(None, {"teacher.model": str(case["teacher"]), "student.model": str(case["student"]),
                              "data.source": case["data"], "export.formats": [fmt], "export.quantization": [scheme],
                              "export.dynamic_batch": False, "out": str(out), "validate.repair": repair,
                              "validate.qat_epochs": qat_epochs, "trust_factories": ["tests.int8_cases"], **FAST})


def measure(case: dict, fmt: str, out: Path, qat_epochs: int) -> dict:
    """One model x format: fp32 size, PTQ, mixed, equalize and QAT repairs, with the time of each step."""
    import edgedistill

    row: dict = {}
    fp32 = edgedistill.export(_config(case, fmt, out / "fp32", "fp32", "off", qat_epochs))[0]
    row["fp32_kib"] = sum(f.stat().st_size for f in fp32.rglob("model*") if f.is_file()) / 1024
    for strategy in ("mixed", "equalize", "qat"):
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
                         "culprit": (ptq.localization or {}).get("culprit"), "artifact": repair.get("artifact")}
    return row


def converted_rows(out: Path, epochs: int) -> list[str]:
    """The converted QAT graph of the mlp student in each runtime: accepted?, top-1 vs the fp32 student, seconds."""
    import numpy as np
    import torch

    from edgedistill.data import load_dataset, split
    from edgedistill.distillation.qat import convert_qat, lower_converted, qat_train
    from edgedistill.exporter import calibration_set
    from edgedistill.formats import get
    from edgedistill.formats.base import run_batched
    from edgedistill.inference import predict_logits
    from edgedistill.modelref import load_model
    from edgedistill.trust import trusting

    case = int8_cases.wide_range_mlp(out / "mlp-converted")
    with trusting(["tests.int8_cases"]):
        student, teacher = load_model(str(case["student"])), load_model(str(case["teacher"]))
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    reference = predict_logits(student, splits.test.inputs).numpy().argmax(1)
    start = time.perf_counter()
    _, qat = qat_train(student, splits.train, predict_logits(teacher, splits.train.inputs),
                       calibration=calibration_set(splits.train, 128), epochs=epochs)
    converted = convert_qat(qat)
    x = torch.as_tensor(splits.test.inputs["x"])
    rows = []
    with torch.no_grad():
        top1 = float((converted(x).numpy().argmax(1) == reference).mean())
    rows.append(f"| PyTorch (converted graph) | yes | {top1:.1%} | {time.perf_counter() - start:.1f} (QAT-KD + convert) |")

    def attempt(name: str, run) -> None:
        begin = time.perf_counter()
        try:
            logits, note = run()
            rows.append(f"| {name} | yes{note} | {float((logits.argmax(1) == reference).mean()):.1%} "
                        f"| {time.perf_counter() - begin:.1f} |")
        except Exception as exc:  # what each toolchain says about a converted pt2e graph is the measurement
            rows.append(f"| {name} | no: {str(exc).splitlines()[0][:160]} | — | {time.perf_counter() - begin:.1f} |")

    def executorch():
        info = lower_converted(converted, (x[:1],), out / "qat.pte")
        return (run_batched(get("executorch").load(out / "qat.pte", 1), splits.test.inputs),
                f" ({info['delegated_ops']} ops delegated to XNNPACK, {info['portable_ops']} not)")

    def onnx_qdq():
        import onnx
        import onnxruntime as ort

        torch.onnx.export(converted, (x[:1],), dynamo=True).save(str(out / "qat.onnx"))
        ops = sorted({n.op_type for n in onnx.load(str(out / "qat.onnx")).graph.node})
        session = ort.InferenceSession(str(out / "qat.onnx"), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return (np.concatenate([session.run(None, {name: x[i : i + 1].numpy()})[0] for i in range(len(x))]),
                f" (ops: {', '.join(ops)})")

    def litert():
        import litert_torch
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=litert_torch.convert(converted, (x[:1],)).model_content())
        interpreter.allocate_tensors()
        i, o = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
        logits = []
        for k in range(len(x)):
            interpreter.set_tensor(i, x[k : k + 1].numpy())
            interpreter.invoke()
            logits.append(interpreter.get_tensor(o).copy())
        return np.concatenate(logits), ""

    attempt("ExecuTorch XNNPACK", executorch)
    attempt("ONNX Runtime", onnx_qdq)
    attempt("LiteRT", litert)
    return rows


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cnn,encoder,mlp,stream")
    parser.add_argument("--formats", default="onnx,litert,executorch")
    parser.add_argument("--qat-epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgedistill-int8-repair"))
    parser.add_argument("--converted-epochs", type=int, default=0)
    args = parser.parse_args()
    import platform

    import torch

    print(f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
          f"QAT-KD {args.qat_epochs} epochs; top-1 = agreement with the fp32 student (held-out split)\n")
    print("| model | format | PTQ top-1 | PTQ passes | culprit | mixed: passes | in float | size KiB (fp32 / PTQ / mixed) "
          "| latency ms (PTQ / mixed) | mixed step s | CLE+PTQ top-1 | CLE passes | CLE KiB / ms | CLE step s "
          "| QAT-KD top-1 | QAT passes | QAT step s |")
    print("|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
    for name in args.cases.split(","):
        case = CASES[name](args.out / name)
        for fmt in args.formats.split(","):
            r = measure(case, fmt, args.out / name / fmt, args.qat_epochs)
            m, e, q = r["mixed"], r["equalize"], r["qat"]
            artifact = f" ({q['artifact']})" if q["artifact"] else ""
            print(f"| {name} | {fmt} | {r['ptq_top1']:.1%} | {r['ptq_passed']} | {m['culprit']} | {m['passed']} "
                  f"| {_fmt(m['share'], '.0%')} | {r['fp32_kib']:.1f} / {r['ptq_kib']:.1f} / {_fmt(m['kib'], '.1f')} "
                  f"| {_fmt(r['ptq_ms'], '.3f')} / {_fmt(m['ms'], '.3f')} | {_fmt(m['repair_s'], '.1f')} "
                  f"| {_fmt(e['top1'], '.1%')} | {e['passed']} | {_fmt(e['kib'], '.1f')} / {_fmt(e['ms'], '.3f')} "
                  f"| {_fmt(e['repair_s'], '.1f')} "
                  f"| {_fmt(q['top1'], '.1%')}{artifact} | {q['passed']} "
                  f"| {_fmt(q['repair_s'], '.1f')} |", flush=True)

    if args.converted_epochs > 0:
        print(f"\nconverted QAT graph of mlp ({args.converted_epochs} epochs of QAT-KD), run as it is:\n")
        print("| runtime | accepts it | top-1 | s |\n|---|---|---:|---:|")
        for line in converted_rows(args.out, args.converted_epochs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
