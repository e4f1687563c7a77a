"""Noise schedules ᾱ(t) on t ∈ {0, ..., T}, scalar (DiffuSeq) or per token (InfoDiffusion).

* ``sqrt`` (DiffuSeq, Li et al. 2022/Gong et al. 2023): ᾱ(t) = (1 - sqrt(t/T + s)) / (1 - sqrt(s)),
  s = 1e-4 (DiffuSeq builds betas from 1 - sqrt(t/T + s); dividing by the t = 0 value
  gives exactly its cumulative product).
* ``linear``: ᾱ(t) = 1 - t/T, the base of the information schedule.
* ``info`` (InfoDiffusion's poster), per target token i with normalised information e_i:

      f(t, e_i) = 1 - t/T + λ · sin(π t/T) · e_i                                  (Eq. info-schedule)
      ᾱ_t^i = clip(min_{s ≤ t} f(s, e_i), ε, 1 - ε)

  For λ·|e|·π > 1 the raw f is not monotone (it rises above 1 at small t for λe > 0 and
  turns back up near T for λe < 0), so we take the running minimum over t. It has a
  closed form: for λe ≥ 0, f is concave with f(0) = 1, so min_{s≤t} f = min(1, f(t)); for
  λe < 0, f is convex and decreasing until t* = (T/π)·arccos(1/(π λ e)) (t* = T when
  π λ |e| ≤ 1), so min_{s≤t} f = f(min(t, t*)). With λ = 0 it is exactly ``linear``.

Every ᾱ is clipped to [ε, 1 - ε], so betas stay in [0, 1) and posterior variances finite.
"""

from __future__ import annotations

import math

import torch

from shared_utils.errors import ConfigError

SCHEDULES = ("sqrt", "linear", "info")
SQRT_SHIFT = 1e-4


def base_alpha_bar(kind: str, t: torch.Tensor, steps: int) -> torch.Tensor:
    """Scalar ᾱ(t) of the ``sqrt`` or ``linear`` schedule (unclipped); ``t`` may be any shape."""
    u = t / steps
    if kind == "sqrt":
        return (1.0 - torch.sqrt(u + SQRT_SHIFT)) / (1.0 - math.sqrt(SQRT_SHIFT))
    if kind == "linear":
        return 1.0 - u
    raise ValueError(f"diffusion.schedule must be one of {SCHEDULES}, got {kind!r}")


def info_alpha_bar(t: torch.Tensor, e: torch.Tensor, steps: int, lam: float) -> torch.Tensor:
    """Running minimum over s ≤ t of f(s, e) of Eq. info-schedule (unclipped), closed form.

    ``t`` broadcasts against ``e`` (e.g. t [B, 1], e [B, L]).
    """
    t, le = torch.broadcast_tensors(t.to(e.dtype), lam * e)

    def f(s: torch.Tensor) -> torch.Tensor:
        return 1.0 - s / steps + le * torch.sin(math.pi * s / steps)

    concave = torch.minimum(torch.ones_like(le), f(t))
    # convex branch (λe < 0): stationary point of f where cos(π s / T) = 1 / (π λ e)
    safe = torch.where(le < 0, le, -torch.ones_like(le))
    t_star = steps / math.pi * torch.arccos((1.0 / (math.pi * safe)).clamp(-1.0, 1.0))
    convex = f(torch.minimum(t, t_star))
    return torch.where(le >= 0, concave, convex)


class NoiseSchedule:
    """ᾱ lookup: ``alpha_bar(t, e)`` returns [B, 1] for scalar schedules and [B, L] for ``info``."""

    def __init__(self, kind: str, steps: int, info_lambda: float = 0.5, eps: float = 1e-4):
        if kind not in SCHEDULES:
            raise ValueError(f"diffusion.schedule must be one of {SCHEDULES}, got {kind!r}")
        if steps < 1:
            raise ConfigError(f"diffusion.steps must be >= 1, got {steps}")
        if not 0 < eps < 0.5:
            raise ConfigError(f"diffusion.eps must be in (0, 0.5), got {eps}")
        self.kind, self.steps, self.info_lambda, self.eps = kind, steps, info_lambda, eps
        if kind != "info":
            grid = torch.arange(steps + 1, dtype=torch.float64)
            self.table = base_alpha_bar(kind, grid, steps).clamp(eps, 1 - eps)

    @property
    def per_token(self) -> bool:
        return self.kind == "info"

    def alpha_bar(self, t: torch.Tensor, e: torch.Tensor | None = None, dtype=torch.float32) -> torch.Tensor:
        """ᾱ at integer steps ``t`` [B]; ``e`` [B, L] normalised information (info schedule only)."""
        if not self.per_token:
            return self.table.to(t.device)[t].to(dtype).unsqueeze(1)
        if e is None:
            raise ValueError("the info schedule needs per-token information scores e")
        t = t.to(e.device).unsqueeze(1)
        return info_alpha_bar(t, e.to(dtype), self.steps, self.info_lambda).clamp(self.eps, 1 - self.eps)
