import math

import pytest
import torch

from semantic_peft.adapters import adapter_disabled, forward, wrap_model
from semantic_peft.config import PeftSettings
from semantic_peft.data import encode_pairs
from semantic_peft.semantic import (
    bucket_by_distance,
    drift_summary,
    example_distances,
    interference_summary,
    knowledge_features,
    measure_distances,
    token_distances,
)


def test_distance_matches_hand_computation():
    embedding = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # position 0 predicts token 0 with p = (0.5, 0.5, ~0): expected (0.5, 0.5) -> cos = 1/sqrt(2)
    # position 1 predicts token 2 with p ~ one-hot(2): expected (1, 1) -> cos = 1
    logits = torch.tensor([[[0.0, 0.0, -1e4], [-1e4, -1e4, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[-100, 0, 2]])
    per_token, rows = token_distances(logits, labels, embedding)
    assert rows.tolist() == [0, 0]
    assert per_token.tolist() == pytest.approx([1 - 1 / math.sqrt(2), 0.0], abs=1e-6)
    assert example_distances(logits, labels, embedding).tolist() == pytest.approx(
        [(1 - 1 / math.sqrt(2)) / 2], abs=1e-6
    )


def test_distance_averages_per_example_and_ignores_padding():
    embedding = torch.eye(3)
    logits = torch.zeros(2, 3, 3)  # uniform: expected = (1/3, 1/3, 1/3); cos with a one-hot = 1/sqrt(3)
    labels = torch.tensor([[-100, 1, 2], [-100, 0, -100]])
    d = example_distances(logits, labels, embedding)
    assert d.tolist() == pytest.approx([1 - 1 / math.sqrt(3)] * 2, abs=1e-6)


@pytest.mark.parametrize("method", ["lora", "ia3", "prompt_tuning", "prefix_tuning"])
def test_disabled_adapter_gives_base_logits_exactly(method, tokenizer, llama, facts):
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[:4]])
    base_logits = forward(llama, enc)[0].detach().clone()
    base_distance = measure_distances(llama, enc)
    model = wrap_model(llama, PeftSettings(method=method, num_virtual_tokens=3))
    with torch.no_grad():  # move the adapter away from its identity initialisation
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn_like(p))
    tuned = forward(model, enc)[0]
    assert not torch.allclose(tuned, base_logits, atol=1e-4)
    with adapter_disabled(model):
        assert torch.equal(forward(model, enc)[0], base_logits)
    assert torch.equal(measure_distances(model, enc, adapter=False), base_distance)
    assert not torch.equal(measure_distances(model, enc, adapter=True), base_distance)


def test_knowledge_features_are_adapter_deltas(tokenizer, llama, facts):
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[:3]])
    model = wrap_model(llama, PeftSettings(method="lora"))
    assert torch.count_nonzero(knowledge_features(model, enc)) == 0  # LoRA starts as the identity (B = 0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    assert knowledge_features(model, enc).abs().sum() > 0


def test_drift_and_buckets():
    trajectory = torch.tensor([[0.5, 0.5, 0.2, 0.9], [0.4, 0.6, 0.1, 0.9], [0.3, 0.7, 0.1, 1.3]])
    summary = drift_summary(trajectory)
    assert summary["pushed_away_fraction"] == 0.5
    assert summary["drift_mean"] == pytest.approx((-0.2 + 0.2 - 0.1 + 0.4) / 4)
    buckets = bucket_by_distance(torch.tensor([0.9, 0.1, 0.5, 0.3]), torch.tensor([0.0, 1.0, 0.0, 1.0]), 2)
    assert [b["value"] for b in buckets] == [1.0, 0.0]
    assert buckets[0]["distance_high"] == pytest.approx(0.3)


def test_interference_cosines():
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    summary = interference_summary(features, ["a", "a", "b"])
    assert summary["feature_cos_same_relation"] == pytest.approx(1.0)
    assert summary["feature_cos_other_relation"] == pytest.approx(0.0)
    assert summary["feature_cos_mean"] == pytest.approx(2 / 6)
