"""Semantic-distance re-weighted learning.

Each fact's loss is weighted by a function of its *detached* semantic distance ``d_i``
(measured on the same forward pass, see :mod:`semantic_peft.semantic`), so facts the model
is far from get more of the gradient while no gradient flows through the weights:

* ``linear``:   w_i = d_i / mean_j d_j
* ``softmax``:  w_i = B * softmax(z / tau)_i         (tempered; tau -> inf gives uniform weights)
  with ``z = (d - mean d) / std d`` clipped to [-2, 2] when ``standardize`` (the default) and
  ``z = d`` otherwise.
  Standardising makes tau scale-free: for roughly normal distances the batch's effective
  sample size is about ``B * exp(-1 / tau^2)`` whatever the spread of the distances, so the
  default tau = 2 keeps it near 0.78 B. On raw distances tau must match their spread, and the
  former default (tau = 0.05 on SmolLM2's distances) put almost all weight on 1-3 facts of 16.
* ``focal``:    w_i = d_i^gamma / mean_j d_j^gamma   (the focal-loss modulating factor with the
  distance as the difficulty; gamma = 1 is ``linear``)

All schemes have mean 1 over the batch (:func:`weight_statistics` reports the effective sample
size ``(sum w)^2 / sum w^2`` and the extreme weights; training logs them every step); ``mix``
interpolates with uniform weights: ``w <- (1 - mix) + mix * w``. The loss is

    L = (1/B) sum_i w_i * CE_i  +  beta * (1/B) sum_i d_i

with ``CE_i`` the mean token cross-entropy of fact ``i``'s target and the optional auxiliary
term (``aux_weight`` = beta) differentiable through the logits (not through the embeddings).
With re-weighting disabled and beta = 0 this is the plain per-fact mean cross-entropy.
"""

from __future__ import annotations

import torch

from semantic_peft.config import WEIGHT_SCHEMES, ReweightConfig
from semantic_peft.semantic import example_distances

Z_CLIP = 2.0  # standardised distances beyond 2 batch standard deviations count as 2


def distance_weights(distances: torch.Tensor, config: ReweightConfig) -> torch.Tensor:
    """Per-example weights (mean 1) from distances; the input is detached first."""
    d = distances.detach().float().clamp_min(0.0)
    if config.scheme == "linear":
        w = d / d.mean().clamp_min(1e-8)
    elif config.scheme == "softmax":
        if config.standardize:  # batch z-scores, clipped so that one outlier cannot take the batch
            z = ((d - d.mean()) / d.std(unbiased=False).clamp_min(1e-8)).clamp(-Z_CLIP, Z_CLIP)
        else:
            z = d
        w = len(d) * torch.softmax(z / config.temperature, dim=0)
    elif config.scheme == "focal":
        powered = d.pow(config.gamma)
        w = powered / powered.mean().clamp_min(1e-8)
    else:
        raise ValueError(f"reweight.scheme must be one of {WEIGHT_SCHEMES}, got {config.scheme!r}")
    return (1.0 - config.mix) + config.mix * w


def weight_statistics(weights: torch.Tensor) -> dict[str, float]:
    """Effective sample size ``(sum w)^2 / sum w^2`` (absolute and as a fraction of the batch),
    largest and smallest weight: an ESS near 1 means the batch trains on one fact."""
    w = weights.detach().float()
    ess = float(w.sum() ** 2 / (w * w).sum().clamp_min(1e-12))
    return {"ess": ess, "ess_fraction": ess / len(w), "max_weight": float(w.max()), "min_weight": float(w.min())}


def per_example_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over each row's supervised tokens, (B,)."""
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        shifted_logits.transpose(1, 2), shifted_labels, ignore_index=-100, reduction="none"
    )
    mask = (shifted_labels != -100).float()
    return (token_loss * mask).sum(1) / mask.sum(1).clamp_min(1)


def knowledge_loss(
    logits: torch.Tensor, labels: torch.Tensor, embedding: torch.Tensor, config: ReweightConfig | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss (module docstring) and its parts: ``ce``, ``distance``, ``weights``."""
    ce = per_example_cross_entropy(logits, labels)
    parts = {"ce": ce.detach()}
    needs_distance = config is not None and (config.enabled or config.aux_weight > 0)
    if not needs_distance:
        return ce.mean(), parts
    distances = example_distances(logits, labels, embedding.detach())
    parts["distance"] = distances.detach()
    if config.enabled:
        weights = distance_weights(distances, config)
        parts["weights"] = weights
        loss = (weights * ce).mean()
    else:
        loss = ce.mean()
    if config.aux_weight > 0:
        loss = loss + config.aux_weight * distances.mean()
    return loss, parts
