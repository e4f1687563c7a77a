"""Bootstrap 95% intervals over evaluation examples (percentile bootstrap, Efron & Tibshirani 1993,
ch. 13): for a mean, a ratio of sums (per-token NLL) and a paired difference of two rows on the
same examples; :func:`resample_indices` for other statistics (e.g. per-bin means resampled by
source). The resampling generator is seeded, so an interval is a function of its inputs."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
SEED = 0


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
