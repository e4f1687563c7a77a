import math

import numpy as np
import pytest
import torch

from infodiffusion.diffusion import posterior_coefficients, q_posterior
from infodiffusion.schedule import NoiseSchedule, info_alpha_bar

T = 100


def diffuseq_scalar_tables(alpha_bar_fn, steps, abar_0=1.0):
    """DiffuSeq/guided-diffusion style (float64): betas from ᾱ, then cumprod and posterior coefficients;
    the cumulative product starts from ``abar_0`` (DiffuSeq: 1)."""
    betas = np.array([min(1 - alpha_bar_fn(i + 1) / alpha_bar_fn(i), 0.999) for i in range(steps)])
    alphas = 1.0 - betas
    abar = abar_0 * np.cumprod(alphas)
    abar_prev = np.append(abar_0, abar[:-1])
    return {
        "abar": abar,
        "coef1": betas * np.sqrt(abar_prev) / (1.0 - abar),
        "coef2": (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
        "var": betas * (1.0 - abar_prev) / (1.0 - abar),
    }


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0])
def test_info_alpha_bar_is_monotone_and_bounded(lam):
    sched = NoiseSchedule("info", T, lam, eps=1e-4)
    e = torch.linspace(-1, 1, 41).unsqueeze(0).expand(T + 1, -1)
    t = torch.arange(T + 1)
    abar = sched.alpha_bar(t, e, dtype=torch.float64)
    assert abar.min() >= 1e-4 and abar.max() <= 1 - 1e-4
    assert (abar[1:] <= abar[:-1]).all(), "ᾱ must be non-increasing in t for every token"
    # high-information words keep more signal at mid steps (keyinfo-first)
    assert (abar[T // 2, 1:] >= abar[T // 2, :-1]).all()


def test_closed_form_equals_running_minimum():
    lam = 1.5
    e = torch.linspace(-1, 1, 21, dtype=torch.float64)
    fine = torch.linspace(0, T, 100 * T + 1, dtype=torch.float64).unsqueeze(1)
    raw = 1 - fine / T + lam * torch.sin(math.pi * fine / T) * e
    running_min = torch.cummin(raw, dim=0).values[::100]
    closed = info_alpha_bar(torch.arange(T + 1, dtype=torch.float64).unsqueeze(1), e.unsqueeze(0), T, lam)
    assert torch.allclose(closed, running_min, atol=1e-6)
    # the raw poster formula is not monotone for this λ: the running minimum is needed
    assert (raw[1:] > raw[:-1]).any()


def test_lambda_zero_is_exactly_the_linear_schedule():
    info = NoiseSchedule("info", T, 0.0)
    linear = NoiseSchedule("linear", T)
    t = torch.arange(T + 1)
    e = torch.rand(T + 1, 7, dtype=torch.float64) * 2 - 1
    assert torch.equal(info.alpha_bar(t, e, torch.float64), linear.alpha_bar(t, dtype=torch.float64).expand(-1, 7))


def test_per_token_posterior_reduces_to_scalar_diffuseq_posterior():
    """λ = 0: the per-token coefficients equal DiffuSeq's scalar tables built from betas."""
    eps = 1e-4
    # our ᾱ_0 is 1 - ε (clipped) where DiffuSeq's is 1; start its cumulative product there
    ref = diffuseq_scalar_tables(lambda s: min(max(1 - s / T, eps), 1 - eps), T, abar_0=1 - eps)
    sched = NoiseSchedule("info", T, 0.0, eps)
    t = torch.arange(1, T + 1)
    e = torch.rand(T, 5, dtype=torch.float64) * 2 - 1
    abar_t = sched.alpha_bar(t, e, torch.float64)
    abar_prev = sched.alpha_bar(t - 1, e, torch.float64)
    c1, c2, var, _ = posterior_coefficients(abar_t, abar_prev)
    abar_ref = torch.from_numpy(ref["abar"]).unsqueeze(1)
    assert torch.allclose(abar_t, abar_ref.expand(-1, 5), rtol=1e-10)
    for ours, key in ((c1, "coef1"), (c2, "coef2"), (var, "var")):
        expected = torch.from_numpy(ref[key]).unsqueeze(1).expand(-1, 5)
        assert torch.allclose(ours, expected, rtol=1e-8, atol=1e-12), key
    # and per-token vs scalar broadcasting give the same posterior mean for x₀, x_t tensors
    x0, xt = torch.randn(T, 5, 3, dtype=torch.float64), torch.randn(T, 5, 3, dtype=torch.float64)
    lin = NoiseSchedule("linear", T, eps=eps)
    scalar = q_posterior(x0, xt, lin.alpha_bar(t, dtype=torch.float64), lin.alpha_bar(t - 1, dtype=torch.float64))
    per_token = q_posterior(x0, xt, abar_t, abar_prev)
    assert torch.equal(scalar.mean, per_token.mean)
    assert torch.equal(scalar.variance, per_token.variance)


def test_sqrt_schedule_equals_diffuseq_cumprod():
    ref = diffuseq_scalar_tables(lambda s: 1 - math.sqrt(s / T + 1e-4), T)
    ours = NoiseSchedule("sqrt", T, eps=1e-4).table[1:]
    assert torch.allclose(ours[:-1], torch.from_numpy(ref["abar"][:-1]), rtol=1e-9)
    # the last step: DiffuSeq caps beta at 0.999, we clip ᾱ at ε
    assert ours[-1].item() == pytest.approx(1e-4)


def test_bad_schedule_options_are_named():
    with pytest.raises(ValueError, match=r"diffusion\.schedule"):
        NoiseSchedule("cosine", T)
    with pytest.raises(ValueError, match=r"diffusion\.eps"):
        NoiseSchedule("info", T, eps=0.7)
    with pytest.raises(ValueError, match="per-token"):
        NoiseSchedule("info", T).alpha_bar(torch.tensor([1]))
