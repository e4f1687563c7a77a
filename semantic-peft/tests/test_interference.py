"""The interference curve on a tiny model: one fact 'learned jointly' is that fact learned alone,
the base model is left unchanged, and seeds aggregate into a table with intervals."""

import json

import pytest
import torch

from semantic_peft.config import ExperimentConfig
from semantic_peft.interference import interference_curve, write_curve


def _config(tmp_path, seed=0):
    config = ExperimentConfig(name="curve", output_dir=str(tmp_path), seed=seed)
    config.data.builtin_per_relation = 1  # 8 facts
    config.train.epochs, config.train.lr, config.train.batch_size = 2, 1e-2, 4
    config.accelerator.tracker = None
    return config


def test_curve_points_and_the_single_fact_equals_alone(tmp_path, tokenizer, make_llama):
    model = make_llama()
    ids = torch.tensor([[3, 4, 5, 6]])
    before = model(ids).logits.detach().clone()
    curve = interference_curve(_config(tmp_path), [8, 1, 4, 99], core=2, model=model, tokenizer=tokenizer)
    assert curve["sizes"] == [1, 4, 8]  # sorted, sizes beyond the facts dropped
    assert [p["steps"] for p in curve["points"]] == [2, 2, 4]  # epochs x ceil(N / batch)
    assert [p["core_facts"] for p in curve["points"]] == [1, 2, 2]
    one = curve["points"][0]
    # learning fact 0 "jointly" with nothing else is learning it alone: the same feature
    assert one["feature_norm_ratio_core"] == pytest.approx(1.0, abs=1e-4)
    assert one["feature_cos_alone_core"] == pytest.approx(1.0, abs=1e-4)
    assert one["em_core"] == curve["alone"]["em"][0]
    assert "feature_cos_mean" not in one and "feature_cos_mean" in curve["points"][1]
    assert torch.allclose(model(ids).logits, before)  # every adapter was removed again


def test_full_fine_tuning_is_refused(tmp_path, tokenizer, make_llama):
    config = _config(tmp_path)
    config.peft.method = "full"
    with pytest.raises(ValueError, match="needs a peft method"):
        interference_curve(config, [1], model=make_llama(), tokenizer=tokenizer)


def test_seeds_aggregate_into_table_and_figure(tmp_path):
    for seed, ems in enumerate([(1.0, 0.5), (0.5, 0.3)]):
        record = {
            "seed": seed,
            "sizes": [1, 10],
            "core": ["a-0", "b-1"],
            "alone": {"em_core": 1.0, "em": [1.0, 1.0]},
            "points": [
                {"n": 1, "em": ems[0], "em_core": ems[0], "feature_norm_ratio_core": 1.0},
                {"n": 10, "em": ems[1], "em_core": ems[1], "feature_norm_ratio_core": 0.5, "feature_cos_mean": 0.2},
            ],
        }
        (tmp_path / f"seed_{seed}.json").write_text(json.dumps(record))
    rows = write_curve(tmp_path)
    assert [r["n"] for r in rows] == ["alone", 1, 10]
    assert rows[2]["em"] == pytest.approx(0.4) and rows[2]["em_half"] == pytest.approx(12.706 * 0.1)
    table = (tmp_path / "curve.md").read_text()
    assert "| 1 | 0.750 ± 3.176 |" in table and "| alone | – | 1.000 ± 0.000 |" in table
    assert (tmp_path / "curve.png").stat().st_size > 0
