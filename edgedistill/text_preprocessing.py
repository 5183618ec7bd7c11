"""How text reaches a model, recorded once and carried everywhere: checkpoint, bundle and app.

A text dataset records its tokenizer in ``Dataset.preprocessing`` (the local tokenizer directory,
``max_length`` and, for WordPiece tokenizers, the settings an app needs). Checkpoints keep that
record, so export, validate and ``edgedistill.run()`` tokenize exactly as distill did without being
told again. A bundle carries it app-ready (the contract in TOKENIZER_CONTRACT.md, shared with the
Kotlin and Swift tokenizers):

- ``tokenizer/vocab.txt``: the WordPiece vocabulary, one token per line, id = 0-based line number;
- ``manifest.preprocessing``: ``{"kind": "wordpiece", "vocab_file": "tokenizer/vocab.txt",
  "do_lower_case", "strip_accents", "tokenize_chinese_chars", "max_length", "padding": "max_length",
  "truncation": true, "cls_token", "sep_token", "pad_token", "unk_token"}``;
- ``golden/golden.npz`` holds ``text``: the raw string of every golden sample.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgedistill.errors import UserError, require

VOCAB_FILE = "tokenizer/vocab.txt"
APP_KEYS = ("kind", "vocab_file", "do_lower_case", "strip_accents", "tokenize_chinese_chars", "max_length", "padding",
            "truncation", "cls_token", "sep_token", "pad_token", "unk_token")


def load_tokenizer(directory: str | Path):
    """A tokenizer from a local Hugging Face directory (a UserError when it is not one)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"tokenizer directory not found: {directory}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = require("transformers", "hf", "Hugging Face transformers")
    try:
        return transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{directory} is not a Hugging Face tokenizer directory: {str(exc).splitlines()[0][:200]}") from None


def wordpiece_settings(tokenizer: Any) -> dict[str, Any]:
    """The settings an app needs to reproduce a fast WordPiece (BERT) tokenizer; {} for other tokenizers."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return {}
    state = json.loads(backend.to_str())
    if (state.get("model") or {}).get("type") != "WordPiece":
        return {}
    normalizer = state.get("normalizer") or {}
    return {"kind": "wordpiece", "do_lower_case": bool(normalizer.get("lowercase", False)),
            "strip_accents": normalizer.get("strip_accents"),
            "tokenize_chinese_chars": bool(normalizer.get("handle_chinese_chars", True)),
            "cls_token": str(tokenizer.cls_token), "sep_token": str(tokenizer.sep_token),
            "pad_token": str(tokenizer.pad_token), "unk_token": str(tokenizer.unk_token)}


def vocabulary(tokenizer: Any) -> list[str]:
    """The tokenizer's tokens in id order (a UserError when its ids are not 0..n-1)."""
    by_id = sorted((i, token) for token, i in tokenizer.get_vocab().items())
    if [i for i, _ in by_id] != list(range(len(by_id))):
        raise UserError("the tokenizer's token ids are not contiguous from 0: it cannot be written as vocab.txt")
    return [token for _, token in by_id]


def app_preprocessing(preprocessing: dict[str, Any]) -> dict[str, Any]:
    """What goes into a bundle's manifest: the app contract for WordPiece text, else the record as it is."""
    if preprocessing.get("kind") != "wordpiece":
        return dict(preprocessing)
    return {key: (VOCAB_FILE if key == "vocab_file" else preprocessing.get(key)) for key in APP_KEYS}


def bundle_vocabulary(preprocessing: dict[str, Any]) -> list[str] | None:
    """The vocabulary a bundle ships for ``preprocessing`` (None when the data is not WordPiece text)."""
    if preprocessing.get("kind") != "wordpiece":
        return None
    if preprocessing.get("vocab"):  # a pruned vocabulary travels in the record itself
        return list(preprocessing["vocab"])

    return vocabulary(load_tokenizer(preprocessing["tokenizer"]))


def write_vocabulary(folder: Path, vocab: list[str]) -> None:
    """``tokenizer/vocab.txt`` in a (temporary) bundle folder."""
    if any("\n" in token or "\r" in token for token in vocab):
        raise UserError("a vocabulary token holds a line break: it cannot be written one token per line")
    path = Path(folder) / VOCAB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(token + "\n" for token in vocab), encoding="utf-8")


def read_vocabulary(folder: Path) -> list[str] | None:
    """A bundle's vocabulary, None when it ships none."""
    path = Path(folder) / VOCAB_FILE
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else None


def recorded_preprocessing(refs: list[Any]) -> dict[str, Any]:
    """The text preprocessing that the first of ``refs`` (model references) records: an edgedistill
    checkpoint's ``meta["preprocessing"]``, or a factory's ``tokenizer`` attribute (its tokenizer directory)."""
    from edgedistill.modelref import import_factory, names_checkpoint, read_checkpoint

    for ref in refs:
        if names_checkpoint(ref):
            if Path(ref.model).is_file():
                recorded = (read_checkpoint(ref.model).get("meta") or {}).get("preprocessing") or {}
                if recorded.get("tokenizer"):
                    return dict(recorded)
        elif ":" in ref.model and not ref.model.startswith("hf:"):
            tokenizer = getattr(import_factory(ref.model), "tokenizer", None)
            if isinstance(tokenizer, (str, Path)):
                return {"tokenizer": str(tokenizer)}
    return {}
