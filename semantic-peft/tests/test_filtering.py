import pytest
import torch

from semantic_peft.config import FilterConfig
from semantic_peft.filtering import filter_facts, greedy_subset, subset_objective
from shared_utils.errors import ConfigError

DISTANCES = torch.tensor([0.1, 0.9, 0.2, 0.3, 0.8])
UNITS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])


def test_threshold_then_variance_seeking_subset():
    report = filter_facts(
        DISTANCES, UNITS, FilterConfig(max_distance=0.5, quantile=None, keep_fraction=2 / 3, variance_weight=1.0)
    )
    # facts 1 and 4 are too far; of 0, 2, 3 the subset {0, 3} has J = -0.2 + 0.5 > J({0, 2}) = -0.15 + 0
    assert report.kept == [0, 3]
    assert set(report.dropped) == {1, 2, 4}
    assert report.dropped[1].startswith("above max_distance")
    assert report.dropped[4].startswith("above max_distance")
    assert report.dropped[2].startswith("not chosen")
    assert report.objective == pytest.approx(-0.2 + 0.5)
    summary = report.as_dict(["a", "b", "c", "d", "e"])
    assert summary["dropped_by_reason"] == {
        "above max_distance": 2,
        "not chosen by the mean-low/variance-high subset": 1,
    }
    assert summary["dropped_facts"][0] == {"fact": "b", "reason": report.dropped[1]}


def test_zero_variance_weight_keeps_the_closest():
    report = filter_facts(
        DISTANCES, UNITS, FilterConfig(max_distance=0.5, quantile=None, keep_fraction=2 / 3, variance_weight=0.0)
    )
    assert report.kept == [0, 2]


def test_quantile_cut():
    report = filter_facts(DISTANCES, UNITS, FilterConfig(quantile=0.6, keep_fraction=1.0))
    # the 0.6 quantile of (0.1, 0.2, 0.3, 0.8, 0.9) is 0.3 + 0.4 * (0.8 - 0.3) = 0.5: 0.8 and 0.9 go
    assert report.kept == [0, 2, 3]
    assert report.threshold == pytest.approx(0.5)
    assert all(r.startswith("above quantile 0.6") for r in report.dropped.values())


def test_greedy_beats_or_matches_closest_subset_objective():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(30, generator=g)
    u = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=-1)
    chosen = greedy_subset(d, u, 10, 1.0)
    closest = torch.argsort(d)[:10].tolist()
    assert len(set(chosen)) == 10
    assert subset_objective(d[chosen], u[chosen], 1.0) >= subset_objective(d[closest], u[closest], 1.0)


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match=r"filter\.keep_fraction"):
        FilterConfig(keep_fraction=0.0)
    with pytest.raises(ConfigError, match=r"filter\.quantile"):
        FilterConfig(quantile=1.5)
