"""Distillation losses behind a small registry: adding a loss is one decorated function.

Output-layer losses compare the student's next-token distribution q with the teacher's p at the
supervised (response) positions; intermediate losses compare projected student hidden states with
the teacher's at the mapped layers. All are means over the selected tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OUTPUT_LOSSES: dict[str, Callable] = {}
INTERMEDIATE_LOSSES: dict[str, Callable] = {}


def register_output_loss(name: str):
    def wrap(fn):
        OUTPUT_LOSSES[name] = fn
        return fn

    return wrap


def register_intermediate_loss(name: str):
    def wrap(fn):
        INTERMEDIATE_LOSSES[name] = fn
        return fn

    return wrap


@dataclass
class TeacherDistribution:
    """The teacher's next-token distribution at the selected positions: full ``logits [N, V]``, or the
    log-probabilities (already at the loss temperature) of its top-k tokens ``topk_logprobs [N, k]``
    with their ids ``topk_ids [N, k]`` (precomputed teacher outputs)."""

    logits: torch.Tensor | None = None
    topk_logprobs: torch.Tensor | None = None
    topk_ids: torch.Tensor | None = None


def _log1mexp(log_mass: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, clamped so an (almost) empty rest bucket stays finite."""
    return torch.log1p(-torch.exp(log_mass).clamp(max=1 - 1e-6))


def paired_log_probs(
    student_logits: torch.Tensor, teacher: TeacherDistribution, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, log q)`` over one shared support ``[N, K]`` at temperature T: the whole vocabulary,
    or the teacher's top-k tokens plus one bucket holding the rest of the mass (a coarsening of the
    vocabulary, so every KL below is a lower bound of the full-vocabulary one)."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    if teacher.logits is not None:
        return F.log_softmax(teacher.logits.float() / temperature, dim=-1), log_q
    log_p_top = teacher.topk_logprobs.float()
    log_q_top = log_q.gather(-1, teacher.topk_ids)
    log_p = torch.cat([log_p_top, _log1mexp(torch.logsumexp(log_p_top, -1, keepdim=True))], dim=-1)
    log_q = torch.cat([log_q_top, _log1mexp(torch.logsumexp(log_q_top, -1, keepdim=True))], dim=-1)
    return log_p, log_q


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(a || b) = sum_v a_v (log a_v - log b_v)."""
    return (log_a.exp() * (log_a - log_b)).sum(-1).mean()


@register_output_loss("ce")
def cross_entropy(student_logits, labels, teacher=None, temperature=1.0, skew_alpha=0.1):
    """SFT: -log q(y_t) of the reference (or teacher-generated) response token."""
    return F.cross_entropy(student_logits.float(), labels)


@register_output_loss("fkl")
def forward_kl(student_logits, labels, teacher, temperature=1.0, skew_alpha=0.1):
    """Forward KL, T^2 KL(p_T || q_T) (Hinton et al. 2015; "KD" / word-level KD)."""
    log_p, log_q = paired_log_probs(student_logits, teacher, temperature)
    return temperature**2 * _kl(log_p, log_q)


@register_output_loss("rkl")
def reverse_kl(student_logits, labels, teacher, temperature=1.0, skew_alpha=0.1):
    """Reverse KL, T^2 KL(q_T || p_T) (mode seeking, as in MiniLLM's objective)."""
    log_p, log_q = paired_log_probs(student_logits, teacher, temperature)
    return temperature**2 * _kl(log_q, log_p)


def _log_mix(log_a: torch.Tensor, log_b: torch.Tensor, alpha: float) -> torch.Tensor:
    """log(alpha a + (1 - alpha) b) computed in log space."""
    return torch.logaddexp(log_a + torch.log(torch.tensor(alpha)), log_b + torch.log(torch.tensor(1 - alpha)))


@register_output_loss("skl")
def skew_kl(student_logits, labels, teacher, temperature=1.0, skew_alpha=0.1):
    """Skew forward KL (DistiLLM): KL(p || alpha p + (1 - alpha) q)."""
    log_p, log_q = paired_log_probs(student_logits, teacher, temperature)
    return temperature**2 * _kl(log_p, _log_mix(log_p, log_q, skew_alpha))


@register_output_loss("srkl")
def skew_reverse_kl(student_logits, labels, teacher, temperature=1.0, skew_alpha=0.1):
    """Skew reverse KL (DistiLLM): KL(q || alpha q + (1 - alpha) p)."""
    log_p, log_q = paired_log_probs(student_logits, teacher, temperature)
    return temperature**2 * _kl(log_q, _log_mix(log_q, log_p, skew_alpha))


@register_intermediate_loss("mse")
def mse(projected_student: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
    """Mean squared error between W h_s and h_t, averaged over tokens and dimensions."""
    return F.mse_loss(projected_student.float(), teacher_hidden.float())


@register_intermediate_loss("mse_ln")
def mse_layer_normed(projected_student: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
    """MSE after a parameter-free layer norm of both sides, so layers of different scale (LLaMA's
    residual stream grows with depth) weigh alike."""
    width = teacher_hidden.shape[-1]
    return F.mse_loss(F.layer_norm(projected_student.float(), (width,)), F.layer_norm(teacher_hidden.float(), (width,)))


@register_intermediate_loss("cosine")
def cosine(projected_student: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of 1 - cos(W h_s, h_t)."""
    return (1 - F.cosine_similarity(projected_student.float(), teacher_hidden.float(), dim=-1)).mean()


def get_output_loss(name: str) -> Callable:
    if name not in OUTPUT_LOSSES:
        raise ValueError(f"loss.output entry {name!r} is not one of {sorted(OUTPUT_LOSSES)}")
    return OUTPUT_LOSSES[name]


def get_intermediate_loss(name: str) -> Callable:
    if name not in INTERMEDIATE_LOSSES:
        raise ValueError(f"loss.intermediate={name!r} is not one of {sorted(INTERMEDIATE_LOSSES)}")
    return INTERMEDIATE_LOSSES[name]
