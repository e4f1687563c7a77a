"""Data filtering: exclude facts that are detrimental to knowledge learning.

The paper's rule, in outline, "minimises the average semantic distance while maximising the
variance" of the kept data. Implemented in two steps, every parameter configurable
(:class:`semantic_peft.config.FilterConfig`):

1. **Distance cut.** Drop facts whose base distance ``d_i`` exceeds ``max_distance``, and
   facts above the ``quantile`` of all base distances.
2. **Subset choice.** From the survivors keep ``round(keep_fraction * n)`` facts chosen
   greedily to maximise

       J(S) = - mean_{i in S} d_i + lambda * var(S),   var(S) = mean_{i in S} ||u_i - mean_S u||^2
                                                               = 1 - ||mean_S u||^2

   where ``u_i`` is the unit-norm target embedding of fact ``i`` (so both terms live on the
   cosine scale) and ``lambda = variance_weight``. The first pick is the closest fact; each
   later step adds the fact with the largest ``J``.

Every dropped fact is reported with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from semantic_peft.config import FilterConfig


@dataclass
class FilterReport:
    kept: list[int]
    dropped: dict[int, str] = field(default_factory=dict)  # fact index -> reason
    threshold: float | None = None  # the distance cut actually applied
    objective: float | None = None  # J of the kept set

    def as_dict(self, fact_ids: list[str] | None = None) -> dict:
        def name(i: int) -> str | int:
            return fact_ids[i] if fact_ids else i

        reasons: dict[str, int] = {}
        for reason in self.dropped.values():
            key = reason.split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        return {
            "kept": len(self.kept),
            "dropped": len(self.dropped),
            "threshold": self.threshold,
            "objective": self.objective,
            "dropped_by_reason": reasons,
            "dropped_facts": [{"fact": name(i), "reason": r} for i, r in sorted(self.dropped.items())],
        }


def subset_objective(distances: torch.Tensor, unit_embeddings: torch.Tensor, variance_weight: float) -> float:
    """``J(S)`` of a whole set (see the module docstring)."""
    variance = 1.0 - unit_embeddings.mean(0).pow(2).sum()
    return float(-distances.mean() + variance_weight * variance)


def greedy_subset(
    distances: torch.Tensor, unit_embeddings: torch.Tensor, size: int, variance_weight: float
) -> list[int]:
    """Indices (into the given tensors) of a greedily built set of ``size`` facts maximising ``J``."""
    n = len(distances)
    size = max(0, min(size, n))
    chosen: list[int] = []
    available = torch.ones(n, dtype=torch.bool)
    sum_d = torch.zeros(())
    sum_u = torch.zeros(unit_embeddings.shape[1])
    for k in range(size):
        mean_d = (sum_d + distances) / (k + 1)
        mean_u = (sum_u + unit_embeddings) / (k + 1)
        score = -mean_d + variance_weight * (1.0 - mean_u.pow(2).sum(-1))
        score[~available] = float("-inf")
        pick = int(torch.argmax(score))
        chosen.append(pick)
        available[pick] = False
        sum_d = sum_d + distances[pick]
        sum_u = sum_u + unit_embeddings[pick]
    return chosen


def filter_facts(distances: torch.Tensor, unit_embeddings: torch.Tensor, config: FilterConfig) -> FilterReport:
    """Apply the two filtering steps to facts with base ``distances`` and target ``unit_embeddings``."""
    n = len(distances)
    if unit_embeddings.shape[0] != n:
        raise ValueError(f"{n} distances but {unit_embeddings.shape[0]} target embeddings")
    dropped: dict[int, str] = {}
    threshold = config.max_distance
    if config.quantile is not None and config.quantile < 1.0:
        q = float(torch.quantile(distances.float(), config.quantile))
        threshold = q if threshold is None else min(threshold, q)
    if threshold is not None:
        for i in range(n):
            if distances[i] > threshold:
                why = (
                    "above max_distance"
                    if config.max_distance is not None and distances[i] > config.max_distance
                    else f"above quantile {config.quantile}"
                )
                dropped[i] = f"{why} (d={float(distances[i]):.4f} > {threshold:.4f})"
    survivors = [i for i in range(n) if i not in dropped]
    size = round(config.keep_fraction * len(survivors))
    if size < len(survivors):
        picked = greedy_subset(distances[survivors], unit_embeddings[survivors], size, config.variance_weight)
        kept = sorted(survivors[j] for j in picked)
        for i in sorted(set(survivors) - set(kept)):
            dropped[i] = f"not chosen by the mean-low/variance-high subset (d={float(distances[i]):.4f})"
    else:
        kept = survivors
    objective = subset_objective(distances[kept], unit_embeddings[kept], config.variance_weight) if kept else None
    return FilterReport(kept=kept, dropped=dropped, threshold=threshold, objective=objective)
