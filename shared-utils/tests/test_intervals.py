"""Student-t intervals over seeds and seeded percentile-bootstrap intervals over examples (shared by the packages)."""

import math

import numpy as np
import pytest

from shared_utils.intervals import mean_ci, mean_interval, paired_diff_ci, ratio_ci, resample_indices


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


def test_mean_interval_is_the_student_t_half_width():
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    mean, half = mean_interval([[0.0, 1.0], [2.0, 1.0]])  # per column, as for the BLEU-vs-steps curves
    assert np.allclose(mean, [1.0, 1.0]) and np.allclose(half, [12.706 * math.sqrt(2) / math.sqrt(2), 0.0])
    assert mean_interval([0.5]) == (0.5, None)
