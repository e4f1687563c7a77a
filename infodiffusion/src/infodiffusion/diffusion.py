"""Partially-noised embedding diffusion (DiffuSeq) with per-token ᾱ (InfoDiffusion).

All formulas take ᾱ as a tensor that broadcasts against [B, L, 1]: a scalar schedule gives
[B, 1] and the information schedule [B, L], so one code path serves both.

Forward (Ho et al. 2020, Eq. 4), applied to target positions only ("partially noising"):
    x_t = sqrt(ᾱ_t) x₀ + sqrt(1 - ᾱ_t) ε,   source positions keep x₀.
Posterior q(x_{t-1} | x_t, x₀) (Ho et al. Eq. 6-7) with α_t = ᾱ_t / ᾱ_{t-1}, β_t = 1 - α_t:
    μ = β_t sqrt(ᾱ_{t-1}) / (1 - ᾱ_t) · x₀ + (1 - ᾱ_{t-1}) sqrt(α_t) / (1 - ᾱ_t) · x_t
    σ² = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)
DDIM (Song et al. 2021, Eq. 12, η = 0) from step t to s < t:
    x_s = sqrt(ᾱ_s) x̂₀ + sqrt(1 - ᾱ_s) · (x_t - sqrt(ᾱ_t) x̂₀) / sqrt(1 - ᾱ_t)
Training loss (DiffuSeq, Gong et al. 2023, Eq. 3 + rounding):
    L = ||x̂₀ - x₀||² + ||sqrt(ᾱ_T) x₀||² + CE(softmax(x₀ Eᵀ), w),   averaged over target positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from infodiffusion.information import InformationScores
from infodiffusion.model import DiffusionTransformer
from infodiffusion.schedule import NoiseSchedule, base_alpha_bar
from shared_utils.errors import ConfigError


@dataclass
class Posterior:
    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor


def q_sample(x0: torch.Tensor, abar_t: torch.Tensor, noise: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Noise target positions of x₀ to step t; source positions are returned unchanged."""
    a = abar_t.unsqueeze(-1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return torch.where(target_mask.bool().unsqueeze(-1), x_t, x0)


def posterior_coefficients(abar_t: torch.Tensor, abar_prev: torch.Tensor):
    """(coef_x0, coef_xt, variance, log_variance) of q(x_{t-1} | x_t, x₀), elementwise in ᾱ."""
    alpha_t = abar_t / abar_prev
    beta_t = 1 - alpha_t
    coef_x0 = beta_t * abar_prev.sqrt() / (1 - abar_t)
    coef_xt = (1 - abar_prev) * alpha_t.sqrt() / (1 - abar_t)
    variance = beta_t * (1 - abar_prev) / (1 - abar_t)
    return coef_x0, coef_xt, variance, variance.clamp(min=1e-20).log()


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, abar_t: torch.Tensor, abar_prev: torch.Tensor) -> Posterior:
    c0, ct, var, logvar = (c.unsqueeze(-1) for c in posterior_coefficients(abar_t, abar_prev))
    return Posterior(c0 * x0 + ct * x_t, var.expand_as(x0), logvar.expand_as(x0))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions where ``mask`` [B, L] (and over a trailing feature axis): -> [B]."""
    if values.dim() == 3:
        values = values.mean(-1)
    mask = mask.to(values.dtype)
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1)


# logits elements per chunk of the rounding cross-entropy (fp32: 256 MiB)
CE_CHUNK_ELEMENTS = 1 << 26


def target_cross_entropy(
    x: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, target_mask: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """Rounding loss CE(softmax(x Eᵀ), w) averaged over target positions: -> [B].

    Equal to ``masked_mean(cross_entropy(logits.transpose(1, 2), ids), target_mask)`` (the
    DiffuSeq term, Gong et al. 2023 Eq. 3) but the vocabulary projection is computed only
    at the target positions, on a flat [N, d] view (no transposed [B, V, L] copy), in chunks
    of at most ``CE_CHUNK_ELEMENTS`` logits; with several chunks under autograd each chunk
    is recomputed in backward instead of keeping all logits.
    """
    keep = target_mask.bool()
    rows = keep.nonzero(as_tuple=True)[0]
    flat_x, flat_ids = x[keep], ids[keep]
    size = chunk or max(1, CE_CHUNK_ELEMENTS // max(1, weight.shape[0]))

    def ce(xc: torch.Tensor, wc: torch.Tensor, ic: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(xc @ wc.t(), ic, reduction="none")

    pieces = []
    for lo in range(0, len(flat_ids), size):
        xc, ic = flat_x[lo : lo + size], flat_ids[lo : lo + size]
        if len(flat_ids) > size and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            pieces.append(checkpoint(ce, xc, weight, ic, use_reentrant=False))
        else:
            pieces.append(ce(xc, weight, ic))
    nll = torch.cat(pieces) if pieces else flat_x.new_zeros(0)
    sums = torch.zeros(ids.shape[0], dtype=nll.dtype, device=nll.device).index_add(0, rows, nll)
    return sums / keep.sum(1).clamp(min=1).to(nll.dtype)


def nearest_embedding(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """argmin_v ||x - E_v||² for x [..., d] over E [V, d]: ids [...].

    One matmul: ||x||² − 2x·E + ||E||² with the constant ||x||² dropped (DiffuSeq computes the
    same distances in ``get_efficient_knn``).
    """
    flat = x.reshape(-1, x.shape[-1])
    dist = torch.addmm((weight * weight).sum(-1).unsqueeze(0), flat, weight.t(), alpha=-2)
    return dist.argmin(-1).reshape(x.shape[:-1])


class TimestepSampler:
    """Uniform or loss-aware (2nd moment, Nichol & Dhariwal 2021) sampling of t ∈ {1..T}."""

    def __init__(self, kind: str, steps: int, history: int = 10, uniform_prob: float = 0.001):
        if kind not in ("uniform", "lossaware"):
            raise ValueError(f"train.timestep_sampler must be uniform or lossaware, got {kind!r}")
        self.kind, self.steps, self.history, self.uniform_prob = kind, steps, history, uniform_prob
        self.losses = np.zeros((steps, history))
        self.counts = np.zeros(steps, dtype=np.int64)

    def weights(self) -> np.ndarray:
        if self.kind == "uniform" or (self.counts < self.history).any():
            return np.ones(self.steps) / self.steps
        w = np.sqrt(np.mean(self.losses**2, axis=-1))
        w = w / w.sum()
        return w * (1 - self.uniform_prob) + self.uniform_prob / self.steps

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps t [B] (1-based) and importance weights 1 / (T p_t) [B]."""
        p = torch.from_numpy(self.weights())
        idx = torch.multinomial(p, batch, replacement=True, generator=generator)
        return idx + 1, (1.0 / (self.steps * p[idx])).float()

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        if self.kind == "uniform":
            return
        for step, loss in zip(t.tolist(), losses.tolist()):
            i = step - 1
            if self.counts[i] == self.history:
                self.losses[i, :-1] = self.losses[i, 1:]
                self.losses[i, -1] = loss
            else:
                self.losses[i, self.counts[i]] = loss
                self.counts[i] += 1

    def state_dict(self) -> dict:
        return {"losses": torch.from_numpy(self.losses.copy()), "counts": torch.from_numpy(self.counts.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.losses = state["losses"].numpy().copy()
        self.counts = state["counts"].numpy().copy()


class TextDiffusion:
    """Schedule + information scores: losses for training and the reverse process for sampling."""

    def __init__(
        self, schedule: NoiseSchedule, info: InformationScores | None = None, sample_schedule: str = "predicted"
    ):
        if schedule.per_token and info is None:
            raise ValueError("the info schedule needs InformationScores")
        if sample_schedule not in ("predicted", "none"):
            raise ValueError(f"diffusion.sample_schedule must be predicted or none, got {sample_schedule!r}")
        self.schedule, self.info, self.sample_schedule = schedule, info, sample_schedule

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def token_info(self, ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor | None:
        """Normalised information e [B, L] of ``ids`` (None for scalar schedules)."""
        if not self.schedule.per_token:
            return None
        return self.info.normalised(ids, target_mask)

    def denoise(
        self,
        model: DiffusionTransformer,
        x_t: torch.Tensor,
        t: torch.Tensor,
        target_mask: torch.Tensor,
        self_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x̂₀ = f_θ(x_t, t): with ``model.input_scaling sqrt_abar`` the target positions of x_t are
        first multiplied by sqrt(ᾱ_t) of the base schedule (linear for ``info``), E[x₀ | x_t] for
        unit-variance Gaussian x₀: the signal stays, the noise handed to the denoiser goes from
        variance 0 (t = 0) through at most 1/4 back to 0 at t = T."""
        core = getattr(model, "module", model)
        if core.config.input_scaling == "sqrt_abar":
            scale = self.base_alpha_bar(t).to(x_t).sqrt().view(-1, 1, 1)
            x_t = torch.where(target_mask.bool().unsqueeze(-1), scale * x_t, x_t)
        return model(x_t, t, target_mask, self_cond)

    def base_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """Scalar ᾱ(t) [B] of the base schedule (``info``: its λ = 0 linear base), clipped like ᾱ."""
        s = self.schedule
        if not s.per_token:
            return s.alpha_bar(t).squeeze(1)
        return base_alpha_bar("linear", t.double(), s.steps).clamp(s.eps, 1 - s.eps).float()

    # ------------------------------------------------------------------ training
    def training_losses(
        self,
        model: DiffusionTransformer,
        ids: torch.Tensor,
        target_mask: torch.Tensor,
        t: torch.Tensor,
        self_cond: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Per-sequence loss terms [B]; ``self_cond`` runs the no-grad first pass (p = 0.5 outside)."""
        core = getattr(model, "module", model)
        e = self.token_info(ids, target_mask)
        x_mean = core.embed(ids)
        one = torch.ones_like(t)
        abar_1 = self.schedule.alpha_bar(one, e)
        x_start = q_sample(x_mean, abar_1, torch.randn_like(x_mean), target_mask)
        abar_t = self.schedule.alpha_bar(t, e)
        x_t = q_sample(x_start, abar_t, torch.randn_like(x_start), target_mask)
        prev = None
        if self_cond:
            with torch.no_grad():
                prev = self.denoise(model, x_t, t, target_mask, None).detach()
        x0_hat = self.denoise(model, x_t, t, target_mask, prev)
        mse = masked_mean((x0_hat - x_start) ** 2, target_mask)
        mse_t1 = masked_mean((x0_hat - x_mean) ** 2, target_mask)
        mse = torch.where(t == 1, mse_t1, mse)
        abar_T = self.schedule.alpha_bar(torch.full_like(t, self.steps), e)
        prior = masked_mean((abar_T.sqrt().unsqueeze(-1) * x_start) ** 2, target_mask)
        rounding = target_cross_entropy(x_start, core.word_embedding.weight, ids, target_mask)
        return {"loss": mse + prior + rounding, "mse": mse, "prior": prior, "rounding": rounding}

    # ------------------------------------------------------------------ sampling
    def round_to_vocab(self, core: DiffusionTransformer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest embedding by L2 (DiffuSeq's clamping), one matmul: (ids, rounded x)."""
        ids = nearest_embedding(x, core.word_embedding.weight)
        return ids, core.embed(ids)

    def sampling_info(
        self, core: DiffusionTransformer, x0_hat: torch.Tensor, ids: torch.Tensor | None, target_mask: torch.Tensor
    ) -> torch.Tensor | None:
        """e for the reverse step: from the argmax words of x̂₀ (option ``none``: e = 0)."""
        if not self.schedule.per_token:
            return None
        if self.sample_schedule == "none":
            return torch.zeros(target_mask.shape, device=x0_hat.device)
        if ids is None:
            ids = core.logits(x0_hat).argmax(-1)
        return self.info.normalised(ids, target_mask)

    @torch.no_grad()
    def sample(
        self,
        model: DiffusionTransformer,
        src_ids: torch.Tensor,
        target_mask: torch.Tensor,
        noise_fn,
        method: str = "ddim",
        steps: int | None = None,
        clamp: bool = True,
        record: bool = False,
    ) -> dict:
        """Reverse process from x_T ~ N(0, I) on target positions; the source is re-imposed each step.

        ``src_ids`` [B, L] holds the source ids (target positions arbitrary); ``noise_fn(shape)``
        returns seeded Gaussian noise (one generator per sequence, see ``sampling.py``).
        Returns ``ids`` [B, L] (rounded final x̂₀) and, with ``record``, the argmax ids of x̂₀
        after every reverse step (the BLEU-vs-steps curve).
        """
        core = getattr(model, "module", model)
        if method == "ddpm":
            grid = list(range(self.steps, 0, -1))
        elif method == "ddim":
            k = steps or self.steps
            if not 1 <= k <= self.steps:
                raise ConfigError(f"sample.steps must be in [1, {self.steps}], got {k}")
            grid = sorted({round(float(x)) for x in np.linspace(self.steps, 1, k)}, reverse=True)
        else:
            raise ValueError(f"sample.method must be ddim or ddpm, got {method!r}")
        mask3 = target_mask.bool().unsqueeze(-1)
        x_src = core.embed(src_ids)
        shape = x_src.shape
        x = torch.where(mask3, noise_fn(shape).to(x_src), x_src)
        prev = None
        trajectory = []
        ids = None
        for i, t in enumerate(grid):
            tt = torch.full((shape[0],), t, device=x.device, dtype=torch.long)
            x0_hat = self.denoise(model, x, tt, target_mask, prev)
            # self-conditioning is fed the raw estimate, as in training (not the clamped one)
            prev = x0_hat
            ids = None
            if clamp:
                ids, x0_hat = self.round_to_vocab(core, x0_hat)
            x0_hat = torch.where(mask3, x0_hat, x_src)
            e = self.sampling_info(core, x0_hat, ids, target_mask)
            abar_t = self.schedule.alpha_bar(tt, e)
            s = grid[i + 1] if i + 1 < len(grid) else 0
            if s == 0:
                x = x0_hat
            elif method == "ddpm":
                abar_s = self.schedule.alpha_bar(tt - 1, e)
                post = q_posterior(x0_hat, x, abar_t, abar_s)
                x = post.mean + (0.5 * post.log_variance).exp() * noise_fn(shape).to(x)
            else:
                abar_s = self.schedule.alpha_bar(torch.full_like(tt, s), e)
                a_t, a_s = abar_t.unsqueeze(-1), abar_s.unsqueeze(-1)
                eps = (x - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()
                x = a_s.sqrt() * x0_hat + (1 - a_s).sqrt() * eps
            x = torch.where(mask3, x, x_src)
            if record:
                step_ids = ids if ids is not None else core.logits(x0_hat).argmax(-1)
                trajectory.append(torch.where(target_mask.bool(), step_ids, src_ids).cpu())
        final_ids, _ = self.round_to_vocab(core, x)
        final_ids = torch.where(target_mask.bool(), final_ids, src_ids)
        out = {"ids": final_ids, "grid": grid}
        if record:
            out["trajectory"] = trajectory
        return out
