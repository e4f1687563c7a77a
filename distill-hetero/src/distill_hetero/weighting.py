"""Loss ratios: fixed weights, or weights learned by homoscedastic uncertainty (Kendall, Gal & Cipolla,
CVPR 2018), one log-variance s_i per loss trained with the model:

    L = sum_i exp(-s_i) * L_i + s_i          (effective ratio of loss i: exp(-s_i))

At the optimum exp(-s_i) = 1 / L_i, so each loss is scaled toward unit size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shared_utils.errors import ConfigError


class FixedWeights(nn.Module):
    """L = sum_i w_i L_i with constant w_i."""

    def __init__(self, names: list[str], init: dict[str, float] | None = None):
        super().__init__()
        init = init or {}
        self.names = list(names)
        self.values = {n: float(init.get(n, 1.0)) for n in self.names}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.values[n] * losses[n] for n in self.names)

    def current(self) -> dict[str, float]:
        return dict(self.values)


class UncertaintyWeights(nn.Module):
    """Learned ratios: one trainable log-variance per loss, initialised to -log(initial ratio)."""

    def __init__(self, names: list[str], init: dict[str, float] | None = None):
        super().__init__()
        init = init or {}
        self.names = list(names)
        self.log_vars = nn.Parameter(torch.tensor([-math.log(float(init.get(n, 1.0))) for n in self.names]))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[n] for n in self.names])
        return (torch.exp(-self.log_vars) * stacked + self.log_vars).sum()

    def current(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.names, torch.exp(-self.log_vars.detach()).tolist())}


def build_weighting(kind: str, names: list[str], init: dict[str, float] | None = None) -> nn.Module:
    unknown = sorted(set(init or {}) - set(names))
    if unknown:
        raise ConfigError(f"loss.weights names {unknown} that are not active losses {names}")
    if kind == "fixed":
        return FixedWeights(names, init)
    if kind == "uncertainty":
        return UncertaintyWeights(names, init)
    raise ValueError(f"loss.weighting={kind!r} is not one of fixed, uncertainty")
