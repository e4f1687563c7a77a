import pytest
import torch

from semantic_peft.config import ReweightConfig
from semantic_peft.reweighting import distance_weights, knowledge_loss, per_example_cross_entropy, weight_statistics
from semantic_peft.semantic import example_distances
from shared_utils.errors import ConfigError


def test_weight_schemes_values():
    d = torch.tensor([0.2, 0.6])
    assert distance_weights(d, ReweightConfig(scheme="linear")).tolist() == pytest.approx([0.5, 1.5])
    assert distance_weights(d, ReweightConfig(scheme="focal", gamma=2.0)).tolist() == pytest.approx([0.2, 1.8])
    soft = torch.softmax(torch.tensor([2.0, 6.0]), 0) * 2
    softmax = distance_weights(d, ReweightConfig(scheme="softmax", temperature=0.1, standardize=False))
    assert softmax.tolist() == pytest.approx(soft.tolist())
    assert distance_weights(d, ReweightConfig(scheme="linear", mix=0.5)).tolist() == pytest.approx([0.75, 1.25])
    with pytest.raises(ConfigError, match=r"ReweightConfig\.scheme must be one of \['linear', 'softmax', 'focal'\]"):
        ReweightConfig(scheme="cubic")
    with pytest.raises(ConfigError, match=r"reweight\.temperature must be > 0"):
        ReweightConfig(temperature=0.0)


def _near_one_hot(weights: torch.Tensor) -> bool:
    """The issue's failure: a few facts carry the batch (ESS under half of it, or one weight > 4x the mean)."""
    stats = weight_statistics(weights)
    return stats["ess_fraction"] < 0.5 or stats["max_weight"] > 4.0


def _batches():
    """Batches of 16 distances: SmolLM2-like spreads (0.3-0.9), a narrow and a wide scale, one outlier."""
    g = torch.Generator().manual_seed(0)
    uniform = 0.3 + 0.6 * torch.rand(16, generator=g)
    outlier = torch.cat([0.5 + 0.02 * torch.randn(15, generator=g), torch.tensor([0.95])])
    return {"uniform": uniform, "narrow": 0.1 * uniform, "wide": 10 * uniform, "outlier": outlier}


@pytest.mark.parametrize("name", ["uniform", "narrow", "wide", "outlier"])
def test_default_weights_are_not_near_one_hot(name):
    d = _batches()[name]
    weights = distance_weights(d, ReweightConfig(enabled=True))
    assert not _near_one_hot(weights), weight_statistics(weights)
    assert weights.min() > 0.2  # no fact of the batch is silenced
    # the former default (raw distances, tau = 0.05) is what the check is there to reject
    if name in ("uniform", "wide"):
        assert _near_one_hot(distance_weights(d, ReweightConfig(temperature=0.05, standardize=False)))


def test_weight_statistics_values():
    stats = weight_statistics(torch.tensor([2.0, 0.0, 1.0, 1.0]))
    assert stats["ess"] == pytest.approx(16 / 6)
    assert stats["ess_fraction"] == pytest.approx(4 / 6)
    assert (stats["max_weight"], stats["min_weight"]) == (2.0, 0.0)
    assert weight_statistics(torch.ones(8))["ess_fraction"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "config",
    [
        ReweightConfig(),
        ReweightConfig(scheme="linear"),
        ReweightConfig(scheme="focal"),
        ReweightConfig(standardize=False, temperature=0.3),
        ReweightConfig(scheme="linear", mix=0.3),
    ],
)
def test_weights_are_detached_with_mean_one(config):
    d = (0.3 + 0.6 * torch.rand(16, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    w = distance_weights(d * 1.0, config)
    assert not w.requires_grad and w.grad_fn is None
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-5)


def test_weights_are_detached():
    d = torch.tensor([0.2, 0.6], requires_grad=True)
    w = distance_weights(d * 2, ReweightConfig(scheme="softmax"))
    assert not w.requires_grad


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    embedding = torch.randn(7, 5, generator=g)
    logits = torch.randn(3, 4, 7, generator=g)
    labels = torch.tensor([[-100, 3, 4, -100], [-100, -100, 1, 2], [-100, 6, 0, 5]])
    return embedding, logits, labels


def test_plain_loss_is_mean_per_fact_cross_entropy():
    embedding, logits, labels = _batch()
    loss, parts = knowledge_loss(logits, labels, embedding, ReweightConfig(enabled=False))
    ce = [
        torch.nn.functional.cross_entropy(logits[i, :-1][labels[i, 1:] != -100], labels[i, 1:][labels[i, 1:] != -100])
        for i in range(3)
    ]
    assert loss.item() == pytest.approx(torch.stack(ce).mean().item(), rel=1e-6)
    assert "weights" not in parts


@pytest.mark.parametrize("scheme", ["linear", "softmax", "focal"])
def test_reweighted_loss_value_and_gradient(scheme):
    config = ReweightConfig(enabled=True, scheme=scheme, temperature=0.2)
    embedding, logits, labels = _batch()
    leaf = logits.clone().requires_grad_(True)
    loss, parts = knowledge_loss(leaf, labels, embedding, config)
    loss.backward()

    # expected: weights computed from the distances and held constant
    ref = logits.clone().requires_grad_(True)
    weights = distance_weights(example_distances(ref, labels, embedding), config)
    expected = (weights * per_example_cross_entropy(ref, labels)).mean()
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(parts["weights"], weights)
    assert torch.allclose(leaf.grad, ref.grad, atol=1e-7)
    assert not torch.allclose(weights, torch.ones(3))  # the weights do change the loss

    # had the weights not been detached, the gradient would differ
    undetached = logits.clone().requires_grad_(True)
    d = example_distances(undetached, labels, embedding)
    w = (
        d / d.mean()
        if scheme == "linear"
        else (3 * torch.softmax(d / 0.2, 0) if scheme == "softmax" else d.pow(2) / d.pow(2).mean())
    )
    (w * per_example_cross_entropy(undetached, labels)).mean().backward()
    assert not torch.allclose(undetached.grad, ref.grad, atol=1e-6)


def test_auxiliary_term_adds_beta_times_mean_distance():
    embedding, logits, labels = _batch(1)
    plain, _ = knowledge_loss(logits, labels, embedding, ReweightConfig(enabled=False))
    with_aux, parts = knowledge_loss(logits, labels, embedding, ReweightConfig(enabled=False, aux_weight=0.5))
    assert with_aux.item() == pytest.approx(plain.item() + 0.5 * parts["distance"].mean().item(), rel=1e-6)
