"""Cross-tokenizer distillation: a student whose vocabulary differs from the teacher's.

Output layer: Universal Logit Distillation (ULD; Boizard, El Haddad, Hudelot & Colombo, "Towards
Cross-Tokenizer Distillation: the Universal Logit Distillation Loss for LLMs", 2024, Eq. 3-5). The two
next-token distributions live on different supports, so ULD compares them up to a permutation of
each vocabulary: both probability vectors are sorted in decreasing order, the shorter is padded
with zeros, and the loss is the L1 distance between them (the closed form of the Wasserstein-1
distance with a uniform unit cost between any two tokens), added to the student's cross-entropy on
its *own* tokenisation of the target. Response positions are paired by sequence index, as ULD does:
the k-th response token of the student with the k-th of the teacher, for k < min of the two lengths.

Intermediate layers: the two tokenisations cut the same text differently, so each student token is
aligned with the mean of the teacher hidden states of the teacher tokens whose character spans
overlap its own (offset mappings of both tokenizers over prompt + response; the two EOS tokens are
given one virtual character past the end, so they align with each other). Student tokens that
overlap no teacher token (text one side truncated away) are left out of the loss.

The student keeps the pruned teacher blocks but gets a new token embedding and (tied) LM head for its
vocabulary, initialised per token as the mean of the teacher's input embeddings of that token's text
re-tokenised by the teacher (:func:`transplant_vocabulary`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from distill_hetero.data import IGNORE, Example
from distill_hetero.losses import TeacherDistribution, register_output_loss

Span = tuple[int, int]


def load_student_tokenizer(name: str):
    """The student's tokenizer: an embedded alias (``minilm-l6``: the bert-base-uncased WordPiece
    vocabulary), a folder or a hub id. A tokenizer without EOS (BERT) ends sequences with its SEP
    token; one without pad uses EOS."""
    from transformers import AutoTokenizer

    from shared_utils.models import EMBEDDED_MODELS, resolve_model

    target = str(resolve_model(name).path) if name in EMBEDDED_MODELS else name
    tokenizer = AutoTokenizer.from_pretrained(target)
    if tokenizer.eos_token is None:
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def token_text(tokenizer, token: str) -> str:
    """The text a student token stands for, as the teacher should read it: a WordPiece continuation
    (``##ing``) without a leading space, any other word-initial token with one (`` paris``)."""
    if token.startswith("##"):
        return token[2:]
    return " " + tokenizer.convert_tokens_to_string([token]).strip()


@torch.no_grad()
def transplant_vocabulary(student: nn.Module, teacher_tokenizer, student_tokenizer) -> int:
    """Replace the student's token embedding and LM head (tied) by ones for ``student_tokenizer``:
    row v = mean of the teacher's input embeddings of the teacher tokens of v's text
    (:func:`token_text`); special tokens take the teacher's EOS embedding, tokens the teacher cannot
    spell the mean embedding. Returns how many rows fell back to the mean."""
    old = student.get_input_embeddings().weight
    vocab = student_tokenizer.get_vocab()
    rows = torch.empty(len(student_tokenizer), old.shape[1], dtype=old.dtype)
    specials = set(student_tokenizer.all_special_tokens)
    mean, fallbacks = old.mean(0), 0
    for token, index in vocab.items():
        if token in specials:
            rows[index] = old[teacher_tokenizer.eos_token_id]
            continue
        ids = teacher_tokenizer(token_text(student_tokenizer, token), add_special_tokens=False)["input_ids"]
        if ids:
            rows[index] = old[ids].mean(0)
        else:
            rows[index], fallbacks = mean, fallbacks + 1
    embedding = nn.Embedding(rows.shape[0], rows.shape[1])
    embedding.weight.data.copy_(rows)
    head = nn.Linear(rows.shape[1], rows.shape[0], bias=False)
    head.weight = embedding.weight
    student.set_input_embeddings(embedding)
    student.set_output_embeddings(head)
    student.config.vocab_size = rows.shape[0]
    student.config.tie_word_embeddings = True
    for key in ("eos_token_id", "bos_token_id"):
        setattr(student.config, key, student_tokenizer.eos_token_id)
    student.config.pad_token_id = student_tokenizer.pad_token_id
    if getattr(student, "generation_config", None) is not None:
        student.generation_config.eos_token_id = student_tokenizer.eos_token_id
        student.generation_config.bos_token_id = student_tokenizer.eos_token_id
        student.generation_config.pad_token_id = student_tokenizer.pad_token_id
    student.requires_grad_(True)
    return fallbacks


def span_alignment(student_spans: list[Span], teacher_spans: list[Span]) -> list[tuple[int, int, float]]:
    """``(student token, teacher token, weight)`` triples: each student token with a non-empty
    character span is paired with every teacher token whose span overlaps it, weight 1/count (the
    mean over them). Both span lists must be in text order (as offset mappings are)."""
    triples = []
    first = 0
    for s, (s_start, s_end) in enumerate(student_spans):
        if s_end <= s_start:
            continue
        while first < len(teacher_spans) and teacher_spans[first][1] <= s_start:
            first += 1
        hits = []
        t = first
        while t < len(teacher_spans) and teacher_spans[t][0] < s_end:
            t_start, t_end = teacher_spans[t]
            if t_end > t_start and max(s_start, t_start) < min(s_end, t_end):
                hits.append(t)
            t += 1
        triples += [(s, t, 1.0 / len(hits)) for t in hits]
    return triples


def response_rows(labels: list[int]) -> int:
    """How many supervised rows (positions predicting a response token) an example has."""
    return sum(1 for label in labels[1:] if label != IGNORE)


@dataclass
class CrossTokenizerData:
    """The student's tokenizer, the teacher's tokenisation of every training example (same ``index``
    as the student's) and the character-span alignment of the two."""

    student_tokenizer: object
    teacher_examples: dict[int, Example]
    alignments: dict[int, list[tuple[int, int, float]]]
    teacher_pad_id: int

    @classmethod
    def build(
        cls, student_tokenizer, student_examples: list[Example], teacher_examples: list[Example], teacher_pad_id: int
    ):
        by_index = {e.index: e for e in teacher_examples}
        alignments = {s.index: span_alignment(s.offsets, by_index[s.index].offsets) for s in student_examples}
        return cls(student_tokenizer, by_index, alignments, teacher_pad_id)

    def batch(self, student_examples: list[Example], student_width: int) -> tuple[list[Example], dict]:
        """The teacher examples of a student batch and the index tensors the losses need: the ULD
        row pairs (by sequence index within each response) and the span alignment, flattened over
        the padded batches (row b, position i -> b * width + i)."""
        teacher = [self.teacher_examples[e.index] for e in student_examples]
        teacher_width = max(len(e.input_ids) for e in teacher)
        s_rows, t_rows, span_s, span_t, span_w = [], [], [], [], []
        s_offset = t_offset = 0
        for b, (s, t) in enumerate(zip(student_examples, teacher)):
            n_s, n_t = response_rows(s.labels), response_rows(t.labels)
            shared = min(n_s, n_t)
            s_rows += range(s_offset, s_offset + shared)
            t_rows += range(t_offset, t_offset + shared)
            s_offset, t_offset = s_offset + n_s, t_offset + n_t
            for i, j, w in self.alignments[s.index]:
                span_s.append(b * student_width + i)
                span_t.append(b * teacher_width + j)
                span_w.append(w)
        extra = {
            "uld_student_rows": torch.tensor(s_rows, dtype=torch.long),
            "uld_teacher_rows": torch.tensor(t_rows, dtype=torch.long),
            "span_student": torch.tensor(span_s, dtype=torch.long),
            "span_teacher": torch.tensor(span_t, dtype=torch.long),
            "span_weight": torch.tensor(span_w, dtype=torch.float32),
        }
        return teacher, extra


def select_rows(dist: TeacherDistribution, rows: torch.Tensor) -> TeacherDistribution:
    """The teacher distribution at ``rows`` of its supervised positions."""
    if dist.logits is not None:
        return TeacherDistribution(logits=dist.logits[rows])
    return TeacherDistribution(topk_logprobs=dist.topk_logprobs[rows], topk_ids=dist.topk_ids[rows])


def span_mean_hidden(
    teacher_hidden: torch.Tensor, batch: dict[str, torch.Tensor], student_shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(aligned [B * S_s, D], aligned mask [B * S_s])``: for each student token the weighted mean
    of the teacher hidden states of the teacher tokens overlapping its character span."""
    flat = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).float()
    count = student_shape[0] * student_shape[1]
    weighted = flat[batch["span_teacher"]] * batch["span_weight"].unsqueeze(-1)
    aligned = torch.zeros(count, flat.shape[-1], device=flat.device).index_add_(0, batch["span_student"], weighted)
    mask = torch.zeros(count, dtype=torch.bool, device=flat.device)
    mask[batch["span_student"]] = True
    return aligned, mask


@register_output_loss("uld")
def universal_logit_distillation(student_logits, labels, teacher, temperature=1.0, skew_alpha=0.1):
    """ULD (Boizard et al. 2024): mean over positions of sum_i |q_(i) - p_(i)|, the student's and the
    teacher's probabilities each sorted in decreasing order and the shorter vector padded with zeros.
    With precomputed teacher outputs the teacher vector is its top-k probabilities (the rest of its
    mass dropped, i.e. padded with zeros). Only the first min(|V_s|, k) sorted entries can differ
    from zero on both sides; past them each side contributes its remaining mass."""
    q = F.softmax(student_logits.float() / temperature, dim=-1)
    if teacher.logits is not None:
        p = F.softmax(teacher.logits.float() / temperature, dim=-1)
    else:
        p = teacher.topk_logprobs.float().exp()
    k = min(q.shape[-1], p.shape[-1])
    q_top, p_top = q.topk(k, dim=-1).values, p.topk(k, dim=-1).values
    tails = (q.sum(-1) - q_top.sum(-1)).clamp(min=0) + (p.sum(-1) - p_top.sum(-1)).clamp(min=0)
    return ((q_top - p_top).abs().sum(-1) + tails).mean()
