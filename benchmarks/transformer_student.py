"""A real pretrained text teacher (all-MiniLM-L6-v2 + topic head) against the students edgedistill derives
from it: depth only, depth + width, and + a pruned vocabulary. Parameters, file size per format x scheme,
single-sample latency per format, top-1 agreement with the teacher and accuracy on a labelled topic
set the benchmark generates (``edgedistill.zoo.minilm``; nothing is downloaded).

Run: ``.venv/bin/python benchmarks/transformer_student.py [--epochs 8] [--out benchmarks/results/transformer_student.json]``

Target (issue 11): a student with <= 25 % of the teacher's parameters, >= 95 % top-1 agreement with it,
>= 3x faster on ExecuTorch. The speed-up is a ratio measured in one run: teacher and student take turns
over ``--rounds`` rounds (median latency of each per round) and the min-max of the per-round ratios is
printed as its noise, with the CPU model and thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgedistill.config import load_config
from edgedistill.data import take
from edgedistill.inference import predict_logits
from edgedistill.formats import get
from edgedistill.modelref import count_parameters, load_model
from edgedistill.quiet import quiet
from edgedistill.stages import distill, export, load_splits
from edgedistill.validation.profile import median_latency_ms
from edgedistill.zoo.minilm import TOPICS, write_topics_jsonl

STUDENTS = {
    "depth (keep every 2nd layer)": {"student.keep_every": 2},
    "depth + width (H192, 6 heads, FFN 768)": {"student.keep_every": 2, "student.hidden_size": 192, "student.heads": 6,
                                                "student.ffn": 768},
    "depth + width + pruned vocabulary": {"student.keep_every": 2, "student.hidden_size": 192, "student.heads": 6,
                                          "student.ffn": 768, "student.prune_vocab": True},
}


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _runner(bundle: Path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest, get(manifest["format"]).load(bundle / manifest["model_file"], manifest["max_batch"])


def _agreement(logits: np.ndarray, teacher: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return float(np.mean(logits.argmax(1) == teacher.argmax(1))), float(np.mean(logits.argmax(1) == y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--per-class", type=int, default=100, help="generated sentences per topic")
    ap.add_argument("--artifacts", default="executorch:fp32,executorch:int8,onnx:fp32",
                    help="format:scheme list exported for every student")
    ap.add_argument("--teacher-artifacts", default="executorch:fp32,onnx:fp32", help="format:scheme list for the teacher")
    ap.add_argument("--work", type=Path, help="working folder; students already distilled there are reused")
    ap.add_argument("--latency-samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "transformer_student.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="transformer-student-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "topics.jsonl"
    if not data.is_file():  # a reused folder keeps its data, so its held-out split stays held out
        write_topics_jsonl(data, per_class=args.per_class, labelled=True)
    base = {"data.source": str(data), "data.max_length": 32, "teacher.model": "edgedistill.zoo.minilm:topic_classifier",
            "distill.epochs": args.epochs, "distill.batch_size": 32}
    results: dict = {"cpu": _cpu(), "threads": 1, "epochs": args.epochs, "models": [], "artifacts": []}
    checkpoints: dict[str, tuple[Path, Path]] = {}
    for name, overrides in STUDENTS.items():
        start, out = time.perf_counter(), work / f"s{len(checkpoints)}"
        if not (out / "student.pt").is_file():
            distill(load_config(None, {**base, **overrides, "out": str(out)}))
        checkpoints[name] = out / "student.pt", out / "teacher.pt"
        print(f"{name}: distilled in {time.perf_counter() - start:.0f} s", flush=True)
    teacher_ckpt = next(iter(checkpoints.values()))[1]
    splits = load_splits(load_config(None, {**base, "teacher.model": str(teacher_ckpt)}))
    test, y = splits.test, splits.test.y
    if test.labels is not None:  # string labels index their sorted names; the teacher's classes follow TOPICS
        y = np.array([TOPICS.index(test.labels[v]) for v in y])
    teacher = load_model(str(teacher_ckpt))
    teacher_logits = predict_logits(teacher, test.inputs).numpy()
    t_params = count_parameters(teacher)
    pte: dict[str, object] = {}
    for name, student_ckpt in [("teacher", teacher_ckpt), *((n, c[0]) for n, c in checkpoints.items())]:
        model = load_model(str(student_ckpt))
        agree, acc = _agreement(predict_logits(model, test.inputs).numpy(), teacher_logits, y)
        results["models"].append({"model": name, "parameters": count_parameters(model),
                                  "share_of_teacher": count_parameters(model) / t_params, "top1_agreement": agree,
                                  "accuracy": acc})
        out = work / "export" / f"m{len(results['models'])}"
        start, bundles = time.perf_counter(), []
        for spec in (args.teacher_artifacts if name == "teacher" else args.artifacts).split(","):
            fmt, scheme = spec.split(":")
            done = out / "bundles" / f"student-{fmt}-{scheme}"
            if args.work and (done / "manifest.json").is_file():  # exported by an earlier run in this folder
                bundles.append(done)
                continue
            config = load_config(None, {**base, "student.model": str(student_ckpt), "teacher.model": str(teacher_ckpt),
                                        "export.formats": [fmt], "export.quantization": [scheme], "out": str(out)})
            try:
                bundles += export(config)
            except Exception as exc:  # a failed artifact is a result too
                print(f"{name}: {spec}: {exc}", flush=True)
        print(f"{name}: exported in {time.perf_counter() - start:.0f} s", flush=True)
        for bundle in bundles:
            manifest, runner = _runner(bundle)
            with quiet():
                logits = np.concatenate([runner(*(v[i:i + 1] for v in test.inputs.values())) for i in range(len(test))])
                latency = median_latency_ms(runner, take(test.inputs, slice(0, args.latency_samples)), args.latency_samples, 5)
            agree, acc = _agreement(logits, teacher_logits, y)
            results["artifacts"].append({"model": name, "format": manifest["format"], "quantization": manifest["quantization"],
                                         "size_bytes": manifest["size_bytes"], "latency_ms": latency,
                                         "portable_compute_ops": manifest["delegation"].get("portable_compute_ops"),
                                         "top1_agreement": agree, "accuracy": acc})
            if manifest["format"] == "executorch" and manifest["quantization"] == "fp32":
                pte[name] = runner
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    sample = take(test.inputs, slice(0, args.latency_samples))
    for name in checkpoints:
        if name in pte and "teacher" in pte:
            ratios = [median_latency_ms(pte["teacher"], sample, args.latency_samples, 5)
                      / median_latency_ms(pte[name], sample, args.latency_samples, 5) for _ in range(args.rounds)]
            results.setdefault("executorch_speedup", {})[name] = {"median": float(np.median(ratios)),
                                                                   "min": min(ratios), "max": max(ratios)}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    """The Markdown tables of a results file."""
    lines = [f"CPU: {results['cpu']}, {results['threads']} thread; {results['epochs']} distillation epochs.", "",
             "| model | params | % of teacher | top-1 agree (PyTorch) | accuracy | ExecuTorch speed-up (min–max) |",
             "|---|---:|---:|---:|---:|---:|"]
    speed = results.get("executorch_speedup", {})
    for m in results["models"]:
        s = speed.get(m["model"])
        cell = f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})" if s else "1× (reference)" if m["model"] == "teacher" else "—"
        lines.append(f"| {m['model']} | {m['parameters']:,} | {100 * m['share_of_teacher']:.1f} % | "
                     f"{100 * m['top1_agreement']:.1f} % | {100 * m['accuracy']:.1f} % | {cell} |")
    lines += ["", "| model | format | scheme | size | latency/sample | portable compute ops | top-1 agree | accuracy |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for a in results["artifacts"]:
        ops = "" if a["portable_compute_ops"] is None else a["portable_compute_ops"]
        lines.append(f"| {a['model']} | {a['format']} | {a['quantization']} | {a['size_bytes'] / 2**20:.2f} MiB | "
                     f"{a['latency_ms']:.2f} ms | {ops} | {100 * a['top1_agreement']:.1f} % | {100 * a['accuracy']:.1f} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
