"""Seeded percentile-bootstrap intervals (shared by distill-hetero's tables and infodiffusion's settling check)."""

import numpy as np
import pytest

from shared_utils.intervals import mean_ci, paired_diff_ci, ratio_ci, resample_indices


def test_bootstrap_intervals():
    low, high = mean_ci([0.0, 10.0] * 20)
    assert low < 5.0 < high and high - low < 5.0
    assert mean_ci([3.0] * 7) == [3.0, 3.0]
    assert mean_ci([1.0, 2.0, 9.0]) == mean_ci([1.0, 2.0, 9.0])  # seeded: an interval is reproducible
    mean, ci = paired_diff_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert mean == 1.0 and ci == [1.0, 1.0]
    low, high = ratio_ci([10.0, 20.0, 30.0], [10, 10, 10])
    assert 1.0 <= low <= 2.0 <= high <= 3.0
    with pytest.raises(ValueError, match="same examples"):
        paired_diff_ci([1.0], [1.0, 2.0])


def test_resample_indices_are_seeded_and_in_range():
    a, b = resample_indices(5, 100, seed=3), resample_indices(5, 100, seed=3)
    assert a.shape == (100, 5) and np.array_equal(a, b) and a.min() >= 0 and a.max() <= 4
    assert not np.array_equal(a, resample_indices(5, 100, seed=4))
    with pytest.raises(ValueError, match="empty sample"):
        resample_indices(0)
