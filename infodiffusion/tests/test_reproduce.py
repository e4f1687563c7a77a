import math

import numpy as np
import pytest

from infodiffusion.reproduce import ROWS, mean_interval


def test_mean_interval_is_the_student_t_half_width():
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    mean, half = mean_interval([[0.0, 1.0], [2.0, 1.0]])  # per column, as for the BLEU-vs-steps curves
    assert np.allclose(mean, [1.0, 1.0]) and np.allclose(half, [12.706 * math.sqrt(2) / math.sqrt(2), 0.0])
    assert mean_interval([0.5]) == (0.5, None)


def test_rows_isolate_each_part():
    """Each neighbouring pair differs in one thing: base schedule, self-conditioning, information term."""
    settings = {row: overrides for row, (_, overrides) in ROWS.items()}
    assert settings["diffuseq"] == {"diffusion.schedule": "sqrt", "model.self_conditioning": False}
    pairs = [("diffuseq", "linear"), ("linear", "linear_selfcond"), ("linear", "info"), ("info", "infodiffusion")]
    for a, b in pairs:
        assert sum(settings[a][k] != settings[b][k] for k in settings[a]) == 1, (a, b)
    assert settings["infodiffusion"] == {"diffusion.schedule": "info", "model.self_conditioning": True}
