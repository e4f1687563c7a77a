"""Teacher loading and student construction: pruned from the teacher, or another family built from a
config (smaller depth and width, same tokenizer)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, LlamaConfig, Qwen2Config

from distill_hetero.config import StudentConfig
from distill_hetero.cross_tokenizer import transplant_vocabulary
from distill_hetero.pruning import prune_teacher
from distill_hetero.vocab import check_vocabularies
from shared_utils.errors import ConfigError
from shared_utils.models import load_causal_lm

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_teacher(name: str, dtype: str = "fp32"):
    """``(teacher, tokenizer)``: frozen (eval mode, no gradients)."""
    teacher, tokenizer = load_causal_lm(name, dtype=DTYPES[dtype])
    return freeze(teacher), tokenizer


def freeze(model):
    model.eval()
    model.requires_grad_(False)
    return model


def student_config(cfg: StudentConfig, tokenizer):
    """A transformers config for the student family, sized by ``cfg``, with the tokenizer's vocabulary."""
    common = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if cfg.family == "gpt2":
        return GPT2Config(
            n_embd=cfg.hidden_size,
            n_layer=cfg.num_layers,
            n_head=cfg.num_heads,
            n_positions=cfg.max_positions,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            **common,
        )
    sizes = {
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_positions,
        "tie_word_embeddings": True,
    }
    if cfg.family == "qwen2":
        return Qwen2Config(attention_dropout=cfg.dropout, **sizes, **common)
    if cfg.family == "llama":
        return LlamaConfig(attention_dropout=cfg.dropout, **sizes, **common)
    return None


@torch.no_grad()
def init_embeddings_from_teacher(student, teacher) -> float:
    """Student token embeddings = teacher embeddings projected on their top-d_s principal directions
    (PCA via ``torch.pca_lowrank``), rescaled to the student's initialiser std (``initializer_range``), so
    the tied output layer starts with logits as small as a random init's. Returns the explained variance."""
    emb_t = teacher.get_input_embeddings().weight.float()
    emb_s = student.get_input_embeddings().weight
    width = emb_s.shape[1]
    centred = emb_t - emb_t.mean(0)
    _, singular, directions = torch.pca_lowrank(centred, q=min(width, centred.shape[1]), center=False, niter=4)
    projected = centred @ directions
    projected = projected * (student.config.initializer_range / projected.pow(2).mean().sqrt())
    rows = min(emb_s.shape[0], projected.shape[0])
    emb_s[:rows, : projected.shape[1]] = projected[:rows].to(emb_s.dtype)
    return float(singular.pow(2).sum() / centred.pow(2).sum())


def build_student(cfg: StudentConfig, tokenizer, teacher=None, student_tokenizer=None):
    """The student. ``init=teacher_prune``: derived from the teacher by structured pruning
    (``num_layers`` of its blocks, ``intermediate_size`` MLP channels; :mod:`distill_hetero.pruning`),
    ``family``, ``hidden_size`` and ``num_heads`` then being the teacher's. Otherwise a fresh student
    from ``cfg`` (gpt2 | qwen2 | llama config), or one loaded from a folder/hub id whose tokenizer must
    equal the teacher's; ``init=teacher_pca`` seeds its token embeddings from the teacher.
    ``student_tokenizer`` (cross-tokenizer): the pruned student gets that vocabulary's embedding and
    head (:func:`~distill_hetero.cross_tokenizer.transplant_vocabulary`), a random one is sized for it."""
    if cfg.init in ("teacher_pca", "teacher_prune") and teacher is None:
        raise ConfigError(f"student.init={cfg.init} needs the teacher")
    if student_tokenizer is not None and cfg.init == "teacher_pca":
        raise ConfigError("student.init=teacher_pca maps embedding rows by token id: it needs the teacher's tokenizer")
    if cfg.init == "teacher_prune":
        student = prune_teacher(teacher, cfg.num_layers, cfg.intermediate_size, cfg.keep_blocks)
        if student_tokenizer is not None:
            transplant_vocabulary(student, tokenizer, student_tokenizer)
        student.train()
        return student
    config = student_config(cfg, student_tokenizer or tokenizer)
    if config is None:
        student = AutoModelForCausalLM.from_pretrained(cfg.family)
        check_vocabularies(
            tokenizer,
            AutoTokenizer.from_pretrained(cfg.family),
            student_vocab_size=student.get_input_embeddings().weight.shape[0],
        )
    else:
        student = AutoModelForCausalLM.from_config(config)
    if cfg.init == "teacher_pca":
        init_embeddings_from_teacher(student, teacher)
    student.train()
    return student
