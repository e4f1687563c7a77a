"""Cross-tokenizer distillation (ULD + character-span alignment) on hand-made tiny vocabularies."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import tiny_config

from distill_hetero.cross_tokenizer import (
    CrossTokenizerData,
    span_alignment,
    span_mean_hidden,
    token_text,
    transplant_vocabulary,
    universal_logit_distillation,
)
from distill_hetero.data import format_prompt, tokenize_example
from distill_hetero.distiller import Distiller
from distill_hetero.losses import TeacherDistribution
from distill_hetero.mapping import Mapping
from distill_hetero.trainer import export_student, train

WORDS = "below is an instruction that describes a task write response appropriately completes the request question what it paris cow says moo apple banana and cherry five"  # noqa: E501


def make_wordpiece(tmp_path=None):
    """An uncased WordPiece tokenizer with a hand-made vocabulary (whole words, letters, ## letters)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tokens = ["[PAD]", "[UNK]", "[SEP]", *WORDS.split(), *letters, *(f"##{c}" for c in letters), *".,:?#!"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", sep_token="[SEP]", eos_token="[SEP]"
    )
    if tmp_path is not None:
        wrapped.save_pretrained(tmp_path)
    return wrapped


def test_uld_sorts_pads_and_takes_l1_by_hand():
    # student q over 4 tokens, teacher p over 3: sorted q = .6 .2 .1 .1, sorted p padded = .5 .3 .2 0
    q_logits = torch.log(torch.tensor([[0.1, 0.6, 0.2, 0.1]]))
    p = torch.tensor([[0.2, 0.5, 0.3]])
    full = universal_logit_distillation(q_logits, None, TeacherDistribution(logits=torch.log(p)))
    assert full.item() == pytest.approx(0.1 + 0.1 + 0.1 + 0.1, abs=1e-6)
    # teacher longer than student: q = .7 .3 padded with 0 0 against p = .4 .3 .2 .1 -> .3 + 0 + .2 + .1
    wide = universal_logit_distillation(
        torch.log(torch.tensor([[0.3, 0.7]])),
        None,
        TeacherDistribution(logits=torch.log(torch.tensor([[0.1, 0.4, 0.2, 0.3]]))),
    )
    assert wide.item() == pytest.approx(0.6, abs=1e-6)
    # precomputed top-2 teacher (.5, .3; the .2 dropped = padded with zeros): |.6-.5| + |.2-.3| + .1 + .1
    top = TeacherDistribution(topk_logprobs=torch.log(torch.tensor([[0.5, 0.3]])), topk_ids=torch.tensor([[1, 2]]))
    assert universal_logit_distillation(q_logits, None, top).item() == pytest.approx(0.4, abs=1e-6)
    # invariant to permuting either vocabulary, zero for the same sorted vector, mean over rows
    perm = universal_logit_distillation(q_logits[:, [3, 2, 1, 0]], None, TeacherDistribution(logits=torch.log(p)))
    assert perm.item() == pytest.approx(full.item(), abs=1e-6)
    same = TeacherDistribution(logits=torch.log(torch.tensor([[0.6, 0.1, 0.2, 0.1]])))
    assert universal_logit_distillation(q_logits, None, same).item() == pytest.approx(0.0, abs=1e-6)
    rows = universal_logit_distillation(
        torch.cat([q_logits, q_logits]), None, TeacherDistribution(logits=torch.log(torch.cat([p, p])))
    )
    assert rows.item() == pytest.approx(0.4, abs=1e-6)


def test_span_alignment_means_overlapping_teacher_tokens_by_hand():
    # text "Hello, World": student hello|,|world|EOS ; teacher Hel|lo,| World|EOS
    student = [(0, 5), (5, 6), (7, 12), (12, 13)]
    teacher = [(0, 3), (3, 6), (6, 12), (12, 13)]
    assert span_alignment(student, teacher) == [(0, 0, 0.5), (0, 1, 0.5), (1, 1, 1.0), (2, 2, 1.0), (3, 3, 1.0)]
    # an empty student span and text the teacher does not cover align with nothing
    assert span_alignment([(0, 0), (20, 25)], teacher) == []
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)  # teacher batch of 2, width 4
    batch = {
        "span_student": torch.tensor([0, 0, 1, 5]),  # row 0 tokens 0, 1; row 1 token 2 (1 * 3 + 2)
        "span_teacher": torch.tensor([0, 1, 1, 6]),  # row 1 token 2 = 1 * 4 + 2
        "span_weight": torch.tensor([0.5, 0.5, 1.0, 1.0]),
    }
    aligned, mask = span_mean_hidden(hidden, batch, (2, 3))
    assert mask.tolist() == [True, True, False, False, False, True]
    assert aligned[0].tolist() == [1.0, 2.0]  # mean of teacher rows (0, 1) and (2, 3)
    assert aligned[1].tolist() == [2.0, 3.0]
    assert aligned[5].tolist() == hidden[1, 2].tolist()


def test_offsets_of_real_tokenizers_give_the_span_alignment(tokenizer):
    student_tok = make_wordpiece()
    prompt, answer = format_prompt("What is it?"), "Paris."
    s = tokenize_example(student_tok, 0, prompt, answer, 64, 12, with_offsets=True)
    t = tokenize_example(tokenizer, 0, prompt, answer, 64, 12, with_offsets=True)
    text = prompt + answer
    assert len(s.offsets) == len(s.input_ids) and len(t.offsets) == len(t.input_ids)
    assert s.offsets[-1] == t.offsets[-1] == (len(text), len(text) + 1)  # the two EOS align with each other
    triples = span_alignment(s.offsets, t.offsets)
    assert (len(s.input_ids) - 1, len(t.input_ids) - 1, 1.0) in triples
    for i, j, _ in triples:  # every pair overlaps in the text
        (a, b), (c, d) = s.offsets[i], t.offsets[j]
        assert max(a, c) < min(b, d)
    paris = [i for i, o in enumerate(s.offsets) if text[o[0] : o[1]] == "Paris"]
    assert paris and any(i == paris[0] for i, _, _ in triples)
    for i in {i for i, _, _ in triples}:  # the weights of each student token sum to 1
        assert sum(w for k, _, w in triples if k == i) == pytest.approx(1.0)


def test_transplanted_rows_are_the_mean_of_the_teacher_embeddings(teacher, tokenizer):
    from distill_hetero.pruning import prune_teacher

    student_tok = make_wordpiece()
    student = prune_teacher(teacher, 2)
    old = student.get_input_embeddings().weight.detach().clone()
    transplant_vocabulary(student, tokenizer, student_tok)
    emb = student.get_input_embeddings().weight
    assert emb.shape[0] == len(student_tok) and student.get_output_embeddings().weight is emb
    assert token_text(student_tok, "##s") == "s" and token_text(student_tok, "paris") == " paris"
    for token in ("paris", "##s", "moo"):
        ids = tokenizer(token_text(student_tok, token), add_special_tokens=False)["input_ids"]
        assert torch.allclose(emb[student_tok.convert_tokens_to_ids(token)], old[ids].mean(0))
    assert torch.equal(emb[student_tok.pad_token_id].detach(), old[tokenizer.eos_token_id])
    assert student.config.vocab_size == len(student_tok) and student.config.eos_token_id == student_tok.eos_token_id


def test_same_vocabulary_losses_are_refused_across_tokenizers(tmp_path, teacher):
    from shared_utils.errors import ConfigError

    cfg = tiny_config(tmp_path, **{"loss.output": ["fkl"]})
    with pytest.raises(ConfigError, match="shared vocabulary"):
        Distiller(teacher, cfg.loss, Mapping([(0, 0)]), 32, 10, cross_tokenizer=True)


def test_cross_tokenizer_run_trains_a_student_on_its_own_vocabulary(tmp_path, teacher, tokenizer):
    student_tok = make_wordpiece(tmp_path / "wordpiece")
    answers = ["Paris.", "The cow says moo.", "apple, banana and cherry", "five"]
    prompts = [format_prompt(f"Question {i}: what is it?") for i in range(8)]
    s_ex = [tokenize_example(student_tok, i, p, answers[i % 4], 64, 12, True) for i, p in enumerate(prompts)]
    t_ex = [tokenize_example(tokenizer, i, p, answers[i % 4], 64, 12, True) for i, p in enumerate(prompts)]
    cross = CrossTokenizerData.build(student_tok, s_ex, t_ex, tokenizer.pad_token_id)
    cfg = tiny_config(
        tmp_path,
        **{
            "student.tokenizer": str(tmp_path / "wordpiece"),
            "student.init": "teacher_prune",
            "student.num_layers": 2,
            "loss.output": ["ce", "uld"],
            "loss.weighting": "fixed",
            "train.steps": 6,
        },
    )
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    result = train(cfg, teacher, tokenizer, s_ex, cross=cross, progress=False)
    first, last = result.history[0], result.history[-1]
    assert {"loss/ce", "loss/uld", "loss/inter"} <= set(last)
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert last["loss/uld"] < first["loss/uld"] and last["loss/inter"] < first["loss/inter"]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    path = export_student(result, student_tok, tmp_path / "student")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(path)
    assert reloaded.get_input_embeddings().weight.shape[0] == len(student_tok)
    assert AutoTokenizer.from_pretrained(path).get_vocab() == student_tok.get_vocab()
    with pytest.raises(Exception, match="cross-tokenizer data"):
        train(cfg, teacher, tokenizer, s_ex, progress=False)
