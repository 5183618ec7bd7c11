"""JSON Lines text (``{"text": "...", "label": 1}`` per line) tokenized by a local Hugging Face tokenizer.

Produces the named inputs ``input_ids`` and ``attention_mask`` (padded / truncated to
``max_length``). Labels are optional; integer labels are class indices, string labels are mapped to
indices in sorted order. Only local directories are read: nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgedistill.dataset import Dataset
from edgedistill.errors import UserError
from edgedistill.text_preprocessing import load_tokenizer, wordpiece_settings


def _read_records(path: Path, text_field: str) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {number} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise UserError(f"{path} line {number} has no string field {text_field!r} (set data.text_field)")
            records.append(record)
    if not records:
        raise UserError(f"data file {path} is empty: no JSON lines")
    return records


def _labels(path: Path, records: list[dict], field: str) -> tuple[np.ndarray | None, list[str] | None]:
    present = [field in r for r in records]
    if not any(present):
        return None, None
    if not all(present):
        raise UserError(f"{path}: line {present.index(False) + 1} has no {field!r} but others do; label all or none")
    values = [r[field] for r in records]
    if all(isinstance(v, str) for v in values):
        names = sorted(set(values))
        return np.array([names.index(v) for v in values], dtype=np.int64), names
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise UserError(f"{path}: {field!r} must be all integers or all strings")
    y = np.array(values, dtype=np.int64)
    if y.min() < 0:
        raise UserError(f"{path}: labels must be >= 0, found {int(y.min())} on line {int(y.argmin()) + 1}")
    return y, None


def load_jsonl_text(path: str | Path, *, tokenizer: str | Path | None, max_length: int = 128,
                    text_field: str = "text", label_field: str = "label") -> Dataset:
    """Tokenized text from a ``.jsonl`` file; ``tokenizer`` is a local Hugging Face directory."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    if tokenizer is None:
        raise UserError(f"{path} is text: set data.tokenizer to a local Hugging Face tokenizer directory")
    records = _read_records(path, text_field)
    y, names = _labels(path, records, label_field)
    tok = load_tokenizer(tokenizer)
    encoded = tok([r[text_field] for r in records], padding="max_length", truncation=True, max_length=max_length,
                  return_tensors="np")
    inputs = {"input_ids": encoded["input_ids"].astype(np.int64), "attention_mask": encoded["attention_mask"].astype(np.int64)}
    preprocessing = {"source": "jsonl-text", "tokenizer": str(Path(tokenizer).resolve()), "tokenizer_class": type(tok).__name__,
                     "vocab_size": len(tok), "max_length": max_length, "padding": "max_length", "truncation": True,
                     "text_field": text_field, **wordpiece_settings(tok)}
    texts = np.array([r[text_field] for r in records], dtype=np.str_)
    return Dataset(inputs=inputs, y=y, labels=names, preprocessing=preprocessing, name=path.stem, texts=texts)
