import json
from pathlib import Path

import pytest
import torch
from tiny import make_examples, tiny_config

from distill_hetero.trainer import latest_checkpoint, train


def _params(result):
    return {k: v.detach().clone() for k, v in result.distiller.state_dict().items()}


def test_stop_and_resume_equals_uninterrupted(tmp_path, teacher, tokenizer):
    overrides = {
        "loss.intermediate": "mse_ln",
        "loss.weighting": "uncertainty",
        "student.dropout": 0.1,
        "train.steps": 4,
    }
    examples = make_examples(tokenizer, 6)
    full = train(tiny_config(tmp_path / "a", **overrides), teacher, tokenizer, examples, progress=False)

    cfg = tiny_config(tmp_path / "b", **overrides, **{"train.checkpoint_every": 2})
    first = train(cfg, teacher, tokenizer, examples, stop_after=3, progress=False)  # "crashes" after step 3
    assert latest_checkpoint(cfg.output_dir).name == "step_2"
    resumed = train(cfg, teacher, tokenizer, examples, progress=False)
    assert len(first.history) == 3 and [h["step"] for h in resumed.history] == [1, 2, 3, 4]

    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys() and any("log_vars" in k for k in a) and any("projectors" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_golden_tiny_run(tmp_path, teacher, tokenizer):
    """A 5-step run of the full method (tiny LLaMA -> tiny GPT-2, layer-normed MSE, learned ratios) reproduces
    the stored curve of losses and ratios: catches silent numerical changes in any part of the method."""
    golden = json.loads((Path(__file__).parent / "golden_tiny_run.json").read_text())
    cfg = tiny_config(tmp_path, **{"loss.intermediate": "mse_ln", "loss.weighting": "uncertainty", "train.steps": 5})
    history = train(cfg, teacher, tokenizer, make_examples(tokenizer, 6), progress=False).history
    for key, values in golden.items():
        assert [h[key] for h in history] == pytest.approx(values, rel=1e-4), key
