import pytest
import torch
from tiny import make_examples, make_teacher, make_tokenizer, tiny_config
from transformers import AutoModelForCausalLM

from distill_hetero.alignment import AlignmentModule
from distill_hetero.config import StudentConfig
from distill_hetero.data import collate
from distill_hetero.distiller import Distiller, TeacherCache, teacher_forward
from distill_hetero.extraction import capture_hidden_states, selected_logits
from distill_hetero.models import build_student
from distill_hetero.trainer import export_student, train
from distill_hetero.vocab import VocabularyMismatchError, check_vocabularies


def test_hooks_capture_the_same_states_as_output_hidden_states(teacher, tokenizer):
    batch = collate(make_examples(tokenizer, 3), tokenizer.pad_token_id)
    with capture_hidden_states(teacher, [0, 2, 3]) as hidden:
        out = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    assert sorted(hidden) == [0, 2, 3]
    for layer in (0, 2, 3):  # the last entry of hidden_states has the final norm applied, blocks 0..L-1 do not
        assert torch.equal(hidden[layer], out.hidden_states[layer])
    hidden.clear()
    teacher(input_ids=batch["input_ids"])
    assert hidden == {}  # the hooks are gone after the block


def test_selected_logits_equal_full_logits_at_the_positions(teacher, tokenizer):
    batch = collate(make_examples(tokenizer, 3), tokenizer.pad_token_id)
    positions = batch["labels"] != -100
    full = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(
        selected_logits(teacher, batch["input_ids"], batch["attention_mask"], positions),
        full[positions],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_projector_shapes_follow_the_widths(kind):
    align = AlignmentModule([(0, 0), (1, 5), (2, 10)], student_width=16, teacher_width=48, kind=kind)
    assert sorted(align.projectors) == ["s0_t0", "s1_t5", "s2_t10"]
    assert align(1, 5, torch.randn(3, 7, 16)).shape == (3, 7, 48)
    first = align.projectors["s1_t5"] if kind == "linear" else align.projectors["s1_t5"][0]
    assert first.weight.shape == (48, 16)


def test_teacher_frozen_student_and_projectors_change_and_export_has_no_projectors(tmp_path, teacher, tokenizer):
    cfg = tiny_config(tmp_path, **{"loss.intermediate": "mse", "loss.weighting": "uncertainty", "train.steps": 2})
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(cfg.seed)
    fresh = build_student(cfg.student, tokenizer)
    result = train(cfg, teacher, tokenizer, make_examples(tokenizer), progress=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    student = result.distiller.student
    assert not torch.equal(student.transformer.h[0].mlp.c_fc.weight, fresh.transformer.h[0].mlp.c_fc.weight)
    assert result.history[-1]["weight/inter"] != pytest.approx(1.0)  # the learned ratio moved
    proj = result.distiller.align.projectors
    assert sorted(proj) == ["s0_t0", "s1_t2", "s2_t4"]
    assert proj["s1_t2"].weight.shape == (32, 16)
    path = export_student(result, tokenizer, tmp_path / "student")
    loaded = AutoModelForCausalLM.from_pretrained(path)
    assert type(loaded).__name__ == "GPT2LMHeadModel" and loaded.config.n_layer == 2
    assert not any("projector" in k or "log_vars" in k for k in loaded.state_dict())
    torch.testing.assert_close(loaded.transformer.wte.weight, student.transformer.wte.weight)


def test_cache_with_all_tokens_gives_the_live_losses(tmp_path, teacher, tokenizer):
    torch.manual_seed(0)
    examples = make_examples(tokenizer, 4)
    student = build_student(
        StudentConfig(family="gpt2", num_layers=2, hidden_size=16, num_heads=2, init="random"), tokenizer
    )
    cfg = tiny_config(tmp_path, **{"loss.intermediate": "cosine"}).loss
    distiller = Distiller(student, cfg, [(0, 0), (2, 4)], 32, len(tokenizer))
    batch = collate([examples[2], examples[0]], tokenizer.pad_token_id)
    live = distiller(batch, teacher_forward(teacher, batch, distiller.teacher_layers, len(tokenizer)))[1]
    cache = TeacherCache(
        teacher,
        examples,
        distiller.teacher_layers,
        top_k=len(tokenizer),
        temperature=1.0,
        vocab_size=len(tokenizer),
        pad_id=tokenizer.pad_token_id,
        batch_size=3,
    )
    cached = distiller(batch, cache(batch))[1]
    assert cache.mean_covered_mass == pytest.approx(1.0, abs=1e-5)
    assert float(cached["fkl"].detach()) == pytest.approx(float(live["fkl"].detach()), rel=1e-4)
    # hidden states are cached in fp16
    assert float(cached["inter"].detach()) == pytest.approx(float(live["inter"].detach()), rel=1e-3)


def test_teacher_cache_digest_names_its_bytes(tokenizer, teacher):
    """The digest recorded in every row: equal for the same teacher outputs, different for one bit."""
    examples = make_examples(tokenizer, 4)

    def build():
        return TeacherCache(teacher, examples, [0, 2], 8, 1.0, len(tokenizer), tokenizer.pad_token_id, batch_size=3)

    first, nudged, flipped = build(), build(), build()
    assert first.digest() == build().digest() and len(first.digest()) == 64
    top_lp = nudged.entries[2][0]
    top_lp[0, 0] = torch.nextafter(top_lp[0, 0], torch.tensor(0.0))  # one ulp, the size of the change
    assert nudged.digest() != first.digest()
    flipped.entries[3][2][1].view(torch.int16)[0, 0] ^= 1  # the last bit of one fp16 hidden state
    assert flipped.digest() != first.digest()


def test_mismatched_vocabularies_fail_clearly(tokenizer):
    other = make_tokenizer(extra_words=("<extra>",))
    with pytest.raises(VocabularyMismatchError, match=r"vocabularies differ.*only in student: \['<extra>'\]"):
        check_vocabularies(tokenizer, other)
    with pytest.raises(VocabularyMismatchError, match="student model has 10 output rows"):
        check_vocabularies(tokenizer, tokenizer, student_vocab_size=10)


def test_student_is_another_family_with_pca_initialised_embeddings(tokenizer):
    teacher = make_teacher(tokenizer, width=32)
    student = build_student(
        StudentConfig(
            family="qwen2", num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32, init="teacher_pca"
        ),
        tokenizer,
        teacher,
    )
    assert type(student).__name__ == "Qwen2ForCausalLM"
    emb_t, emb_s = teacher.get_input_embeddings().weight.detach(), student.get_input_embeddings().weight.detach()
    assert emb_s.shape == (len(tokenizer), 16)
    assert float(emb_s.pow(2).mean().sqrt()) == pytest.approx(student.config.initializer_range, rel=1e-4)
    # PCA keeps the teacher's geometry: pairwise similarities correlate strongly
    sim_t, sim_s = torch.corrcoef(emb_t[1:51].detach()), torch.corrcoef(emb_s[1:51].detach())
    assert torch.corrcoef(torch.stack([sim_t.flatten(), sim_s.flatten()]))[0, 1] > 0.5
