import random

import numpy as np
import pytest
import torch

from shared_utils.seeding import seed_everything


def _draw():
    return random.random(), np.random.rand(3), torch.randn(4, 4), torch.nn.Linear(3, 2).weight.detach().clone()


def test_same_seed_gives_identical_draws():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    second = _draw()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])
    assert torch.equal(first[3], second[3])


def test_different_seeds_differ():
    seed_everything(1)
    a = torch.randn(8)
    seed_everything(2)
    b = torch.randn(8)
    assert not torch.equal(a, b)


def test_deterministic_flag_turns_on_torch_determinism():
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_bad_seed_is_rejected(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)
