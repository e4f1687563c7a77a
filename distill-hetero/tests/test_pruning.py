"""The pruned student: which blocks and channels it keeps, that it is the teacher's weights, and that
it generates."""

import pytest
import torch
from tiny import make_teacher

from distill_hetero.config import StudentConfig
from distill_hetero.models import build_student
from distill_hetero.pruning import block_influence, channel_scores, kept_blocks, most_influential, prune_teacher
from shared_utils.errors import ConfigError


def test_kept_blocks_are_evenly_spaced_and_end_with_the_last():
    assert kept_blocks(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert kept_blocks(4, 2) == [0, 3]
    assert kept_blocks(5, 5) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match=r"student\.num_layers=31 must be in 1\.\.30"):
        kept_blocks(30, 31)


def test_unpruned_copy_equals_the_teacher(tokenizer):
    teacher = make_teacher(tokenizer)
    student = prune_teacher(teacher, 4, 0)
    ids = torch.tensor([[5, 9, 17, 3, 40]])
    assert torch.allclose(student(ids).logits, teacher(ids).logits, atol=1e-6)
    assert all(p.requires_grad for p in student.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())  # the teacher stays frozen


def test_pruned_student_keeps_the_highest_norm_channels_of_the_kept_blocks(tokenizer):
    teacher = make_teacher(tokenizer)
    student = build_student(StudentConfig(num_layers=2, intermediate_size=16, init="teacher_prune"), tokenizer, teacher)
    assert student.config.num_hidden_layers == 2 and student.config.intermediate_size == 16
    assert teacher.config.num_hidden_layers == 4 and teacher.config.intermediate_size == 64
    for new, old in zip(student.model.layers, [teacher.model.layers[0], teacher.model.layers[3]]):
        assert torch.equal(new.self_attn.q_proj.weight, old.self_attn.q_proj.weight)
        channels = channel_scores(old.mlp).topk(16).indices.sort().values
        assert torch.equal(new.mlp.up_proj.weight, old.mlp.up_proj.weight[channels])
        assert torch.equal(new.mlp.down_proj.weight, old.mlp.down_proj.weight[:, channels])
        dropped = torch.ones(64, dtype=torch.bool)
        dropped[channels] = False
        assert channel_scores(old.mlp)[channels].min() >= channel_scores(old.mlp)[dropped].max()
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    # generation with the KV cache (indexed by the new block positions) equals recomputing every step
    ids = torch.tensor([[5, 9, 17, 3]])
    cached = student.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    full = ids
    for _ in range(5):
        full = torch.cat([full, student(full).logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(cached, full)


def test_pruning_without_the_teacher_is_an_error(tokenizer):
    with pytest.raises(ConfigError, match=r"student\.init=teacher_prune needs the teacher"):
        build_student(StudentConfig(init="teacher_prune"), tokenizer)


def test_explicit_keep_blocks_copy_those_blocks_and_are_checked(tokenizer):
    teacher = make_teacher(tokenizer)
    cfg = StudentConfig(num_layers=2, intermediate_size=0, init="teacher_prune", keep_blocks=[2, 1])
    student = build_student(cfg, tokenizer, teacher)
    for new, old in zip(student.model.layers, [teacher.model.layers[1], teacher.model.layers[2]]):
        assert torch.equal(new.mlp.up_proj.weight, old.mlp.up_proj.weight)
    assert [b.self_attn.layer_idx for b in student.model.layers] == [0, 1]
    with pytest.raises(ConfigError, match=r"keep_blocks lists 3 blocks but student\.num_layers=2"):
        prune_teacher(teacher, 2, 0, [0, 1, 2])
    with pytest.raises(ConfigError, match=r"must be distinct teacher block indices in 0\.\.3"):
        prune_teacher(teacher, 2, 0, [0, 4])
    with pytest.raises(ConfigError, match=r"must be distinct"):
        prune_teacher(teacher, 2, 0, [1, 1])


def test_block_influence_is_one_minus_cosine_of_each_blocks_input_and_output(tokenizer):
    teacher = make_teacher(tokenizer)
    ids = torch.tensor([[5, 9, 17, 3, 40], [7, 8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    influence = block_influence(teacher, [{"input_ids": ids, "attention_mask": mask}])
    hidden = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    real = mask.bool()
    for i, value in enumerate(influence):
        cos = torch.nn.functional.cosine_similarity(hidden[i][real], hidden[i + 1][real], dim=-1)
        assert value == pytest.approx(float((1 - cos).mean()), rel=1e-5)
    # an identity block (zeroed output projections) has influence 0 and is the first one dropped
    with torch.no_grad():
        teacher.model.layers[2].self_attn.o_proj.weight.zero_()
        teacher.model.layers[2].mlp.down_proj.weight.zero_()
    influence = block_influence(teacher, [{"input_ids": ids, "attention_mask": mask}])
    assert influence[2] == pytest.approx(0.0, abs=1e-6)
    assert most_influential(influence, 3) == [0, 1, 3]
    assert most_influential([0.5, 0.1, 0.5, 0.2], 2) == [0, 2]
