"""How much of a BERT-style encoder XNNPACK takes, before and after edgedistill's rewrites.

"before" exports the way edgedistill did until issue 11: transformers' SDPA attention with its own
mask code, ``nn.LayerNorm`` as is, no reshape pass. "after" is the current exporter (eager attention
with an arithmetic additive mask, layer norm as matmul/rsqrt, delegable reshapes). Both export the
same 3-layer MiniLM student (every 2nd layer of all-MiniLM-L6-v2 under a mean-pool head); latency is
the median single-sample call in ExecuTorch, the two taking turns over ``--rounds`` rounds.

Run: ``.venv/bin/python benchmarks/xnnpack_encoder_delegation.py [--max-length 32]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from edgedistill.distillation.students import derive_student
from edgedistill.formats import executorch, xnnpack_rewrites
from edgedistill.quiet import quiet
from edgedistill.sources.jsonl_text import load_tokenizer
from edgedistill.validation.profile import median_latency_ms
from edgedistill.zoo.minilm import minilm_directory, topic_classifier, topic_sentences


@contextlib.contextmanager
def as_before(model: torch.nn.Module):
    """The export path before the rewrites: SDPA attention, transformers' mask, layer norms, no reshape pass."""
    model.additive_mask = False
    model.model.set_attn_implementation("sdpa")
    keep = lambda gm: __import__("executorch.exir.pass_base", fromlist=["PassResult"]).PassResult(gm, False)  # noqa: E731
    with mock.patch.object(xnnpack_rewrites, "with_matmul_layer_norms", lambda m: (m, [])), \
            mock.patch.object(xnnpack_rewrites, "delegable_reshapes", keep):
        yield
    model.additive_mask = True
    model.model.set_attn_implementation("eager")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    student = derive_student(topic_classifier(), keep_every=2)[0].eval()
    texts, _ = topic_sentences(per_class=10, seed=3)
    enc = load_tokenizer(minilm_directory())(texts, padding="max_length", truncation=True, max_length=args.max_length,
                                             return_tensors="np")
    inputs = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
    example = tuple(torch.from_numpy(v[:2]) for v in inputs.values())
    work, rows, runners = Path(tempfile.mkdtemp()), {}, {}
    for variant in ("before", "after"):
        path = work / f"{variant}.pte"
        with (as_before(student) if variant == "before" else contextlib.nullcontext()), quiet():
            info = executorch.export(student, example, scheme="fp32", path=path)
        runners[variant] = executorch.load(path)
        rows[variant] = {"delegated_ops": info.delegated_ops, "portable_ops": info.portable_ops,
                         "portable_compute_ops": info.portable_compute_ops,
                         "delegated_subgraphs": info.details["delegated_subgraphs"],
                         "left": info.details["portable_compute_ops"]}
    ratios = []
    for _ in range(args.rounds):
        before = median_latency_ms(runners["before"], inputs, args.samples, 5)
        after = median_latency_ms(runners["after"], inputs, args.samples, 5)
        rows["before"].setdefault("latency_ms", []).append(before)
        rows["after"].setdefault("latency_ms", []).append(after)
        ratios.append(before / after)
    for row in rows.values():
        row["latency_ms"] = float(np.median(row["latency_ms"]))
    rows["speedup"] = {"median": float(np.median(ratios)), "min": min(ratios), "max": max(ratios)}
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
