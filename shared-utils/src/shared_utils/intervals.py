"""95% intervals. Over seeds: the Student-t interval of a mean (:func:`mean_interval`). Over
evaluation examples: percentile bootstrap (Efron & Tibshirani 1993, ch. 13) for a mean, a ratio of
sums (per-token NLL) and a paired difference of two rows on the same examples;
:func:`resample_indices` for other statistics (e.g. per-bin means resampled by source). The
resampling generator is seeded, so an interval is a function of its inputs."""

from __future__ import annotations

import math

import numpy as np

RESAMPLES = 2000
SEED = 0
# t_{0.975, df} of Student's t, df = 1..30 (beyond: the normal 1.96)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
T975 += (2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_interval(values):
    """Mean of ``values`` (axis 0: one entry per seed, each a number or an array) and the half-width
    of its 95% Student-t interval, t_{0.975, n-1} · s / √n (None for a single value)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return x.mean(0), None
    t = T975[n - 2] if n - 2 < len(T975) else 1.96
    return x.mean(0), t * x.std(0, ddof=1) / math.sqrt(n)


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, n)`` indices drawn with replacement from ``range(n)`` by a generator seeded ``seed``."""
    if n == 0:
        raise ValueError("bootstrap of an empty sample")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def mean_ci(values, resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """``[low, high]``: 2.5% and 97.5% percentiles of the mean over resampled examples."""
    x = np.asarray(values, dtype=float)
    means = x[resample_indices(len(x), resamples, seed)].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def ratio_ci(numerators, denominators, resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """Interval of sum(numerators)/sum(denominators), resampling examples (e.g. nats and tokens)."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    idx = resample_indices(len(num), resamples, seed)
    ratios = num[idx].sum(1) / den[idx].sum(1)
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


def paired_diff_ci(a, b, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, list[float]]:
    """``(mean(a − b), interval)`` with both rows resampled on the same examples."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs the same examples: {a.shape} vs {b.shape}")
    return float((a - b).mean()), mean_ci(a - b, resamples, seed)
