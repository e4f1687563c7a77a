"""Loss ratios: fixed weights, weights learned by homoscedastic uncertainty (Kendall, Gal & Cipolla,
CVPR 2018), or weights set from the losses' recent rates of change by Dynamic Weight Average (Liu,
Johns & Davison, CVPR 2019).

Uncertainty: one log-variance s_i per loss, trained with the model:

    L = sum_i exp(-s_i) * L_i + s_i          (effective ratio of loss i: exp(-s_i))

At the optimum exp(-s_i) = 1 / L_i, so each loss is scaled toward unit size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from distill_hetero.config import LossConfig
from shared_utils.errors import ConfigError


class LossWeighting(nn.Module):
    """Combines the named unweighted losses into the total loss (``forward``); ``current()`` gives
    each loss's ratio, which the trainer records after every step."""

    def observe(self, losses: dict[str, float]) -> None:
        """Called once after every optimizer step with that step's unweighted losses (mean over the
        micro-batches and processes, so the same on every process). Only ratios that follow the
        losses' history use it."""


class FixedWeights(LossWeighting):
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


class UncertaintyWeights(LossWeighting):
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


class DynamicWeightAverage(LossWeighting):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, Eq. 7-8), no trainable parameters:

        w_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T),     r_k(t-1) = L_k(t-1) / L_k(t-2),

    with K losses and temperature T (the paper's T = 2: ``loss.dwa_temperature``). A loss that has
    been falling more slowly gets a larger ratio; the K ratios sum to K, and w_k = 1 until two
    periods are complete (no r yet).

    The paper's t is an epoch and L_k(t) the loss averaged over it. Our runs are 60-200 optimizer
    steps (two to seven epochs of the built-in set), so a period here is ``loss.dwa_window``
    optimizer steps: L_k(t) is the mean of the step losses (each the mean over that step's
    micro-batches and processes, see :meth:`observe`) over window t, and the ratios change at the
    end of each window. Window sums and the last two window means are buffers, so they are
    checkpointed and a resumed run continues exactly.
    """

    def __init__(self, names: list[str], temperature: float, window: int):
        super().__init__()
        self.names = list(names)
        self.temperature, self.window = temperature, window
        self.register_buffer("window_sum", torch.zeros(len(self.names), dtype=torch.float64))
        self.register_buffer("window_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("recent_means", torch.zeros(2, len(self.names), dtype=torch.float64))  # L(t-1), L(t-2)
        self.register_buffer("windows_done", torch.zeros((), dtype=torch.long))

    def weights(self) -> torch.Tensor:
        """The ratios the coming step uses, in the order of ``names``."""
        if self.windows_done < 2:
            return torch.ones(len(self.names))
        rates = self.recent_means[0] / self.recent_means[1]
        return (len(self.names) * torch.softmax(rates / self.temperature, dim=0)).float()

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[n] for n in self.names])
        return (self.weights().to(stacked) * stacked).sum()

    def observe(self, losses: dict[str, float]) -> None:
        self.window_sum += torch.tensor([losses[n] for n in self.names], dtype=torch.float64)
        self.window_steps += 1
        if self.window_steps == self.window:
            self.recent_means.copy_(torch.stack([self.window_sum / self.window, self.recent_means[0]]))
            self.window_sum.zero_()
            self.window_steps.zero_()
            self.windows_done += 1

    def current(self) -> dict[str, float]:
        return dict(zip(self.names, self.weights().tolist()))


WEIGHTINGS: dict[str, Callable[[LossConfig, list[str]], LossWeighting]] = {
    "fixed": lambda loss, names: FixedWeights(names, loss.weights),
    "uncertainty": lambda loss, names: UncertaintyWeights(names, loss.weights),
    "dwa": lambda loss, names: DynamicWeightAverage(names, loss.dwa_temperature, loss.dwa_window),
}


def build_weighting(loss: LossConfig, names: list[str]) -> LossWeighting:
    """The ``loss.weighting`` scheme over the active losses ``names``."""
    unknown = sorted(set(loss.weights) - set(names))
    if unknown:
        raise ConfigError(f"loss.weights names {unknown} that are not active losses {names}")
    if loss.weighting not in WEIGHTINGS:
        raise ConfigError(f"loss.weighting={loss.weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[loss.weighting](loss, names)
