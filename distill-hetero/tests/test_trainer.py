import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from tiny import make_examples, tiny_config
from transformers import AutoModelForCausalLM

from distill_hetero.trainer import export_student, train
from shared_utils.checkpoints import CheckpointManager, ResumeMismatch


def _params(result):
    return {k: v.detach().clone() for k, v in result.distiller.state_dict().items()}


@pytest.mark.parametrize(("weighting", "state"), [("uncertainty", "log_vars"), ("dwa", "recent_means")])
def test_stop_and_resume_equals_uninterrupted(tmp_path, teacher, tokenizer, weighting, state):
    overrides = {
        "loss.intermediate": "mse_ln",
        "loss.weighting": weighting,
        "loss.dwa_window": 1,  # dwa: the ratios move from step 3 on, so the resumed steps use restored ratios
        "student.dropout": 0.1,
        "train.steps": 4,
    }
    examples = make_examples(tokenizer, 6)
    full = train(tiny_config(tmp_path / "a", **overrides), teacher, tokenizer, examples, progress=False)

    cfg = tiny_config(tmp_path / "b", **overrides, **{"train.checkpoint_every": 2})
    first = train(cfg, teacher, tokenizer, examples, stop_after=3, progress=False)  # "crashes" after step 3
    assert CheckpointManager(cfg.output_dir).latest().name == "step_2"
    resumed = train(cfg, teacher, tokenizer, examples, progress=False)
    assert len(first.history) == 3 and [h["step"] for h in resumed.history] == [1, 2, 3, 4]

    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys() and any(state in k for k in a) and any("projectors" in k for k in a)
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


def test_dwa_ratios_follow_the_recorded_step_losses(tmp_path, teacher, tokenizer):
    cfg = tiny_config(tmp_path, **{"loss.intermediate": "mse_ln", "loss.weighting": "dwa", "loss.dwa_window": 1})
    history = train(cfg, teacher, tokenizer, make_examples(tokenizer, 6), progress=False).history
    assert (history[0]["weight/fkl"], history[0]["weight/inter"]) == (1.0, 1.0)  # after step 1: no ratio yet
    for prev, entry in itertools.pairwise(history):  # recorded after step t: the ratios step t + 1 uses
        rates = [entry[f"loss/{n}"] / prev[f"loss/{n}"] for n in ("fkl", "inter")]
        e = [math.exp(r / 2.0) for r in rates]
        assert [entry["weight/fkl"], entry["weight/inter"]] == pytest.approx([2 * x / sum(e) for x in e], rel=1e-5)


def test_only_the_last_checkpoints_are_kept(tmp_path, teacher, tokenizer):
    cfg = tiny_config(tmp_path, **{"train.steps": 5, "train.checkpoint_every": 1, "train.keep_last": 2})
    train(cfg, teacher, tokenizer, make_examples(tokenizer, 4), progress=False)
    assert CheckpointManager(cfg.output_dir).steps() == [4, 5]


def test_resume_with_another_config_is_refused_naming_the_keys(tmp_path, teacher, tokenizer):
    examples = make_examples(tokenizer, 4)
    first = tiny_config(tmp_path, **{"train.steps": 4, "train.checkpoint_every": 2})
    train(first, teacher, tokenizer, examples, stop_after=2, progress=False)
    saved = (tmp_path / "run" / "run_config.json").read_text()

    changed = tiny_config(
        tmp_path, **{"train.steps": 6, "train.checkpoint_every": 2, "train.lr": 0.5, "student.init": "teacher_pca"}
    )
    with pytest.raises(ResumeMismatch, match=r"differs in 2 key\(s\): student.init: .*; train.lr: 0.01 -> 0.5\.") as e:
        train(changed, teacher, tokenizer, examples, progress=False)
    assert "train.steps" not in str(e.value)  # the total step count may change on resume
    assert (tmp_path / "run" / "run_config.json").read_text() == saved  # nothing overwritten

    longer = tiny_config(tmp_path, **{"train.steps": 3, "train.checkpoint_every": 2})
    assert [h["step"] for h in train(longer, teacher, tokenizer, examples, progress=False).history] == [1, 2, 3]

    forced = tiny_config(tmp_path, **{"train.steps": 3, "train.checkpoint_every": 2, "train.lr": 0.5})
    forced.train.resume_force = True
    assert train(forced, teacher, tokenizer, examples, progress=False).history[-1]["step"] == 3


def test_crash_while_exporting_leaves_the_previous_student(tmp_path, teacher, tokenizer, monkeypatch):
    result = train(tiny_config(tmp_path), teacher, tokenizer, make_examples(tokenizer, 4), progress=False)
    path = export_student(result, tokenizer, tmp_path / "student")
    before = AutoModelForCausalLM.from_pretrained(path).state_dict()

    student = result.distiller.student
    real_save = student.save_pretrained

    def save_then_crash(folder, **kwargs):
        real_save(folder, **kwargs)
        (Path(folder) / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    with torch.no_grad():
        next(student.parameters()).add_(1.0)
    monkeypatch.setattr(student, "save_pretrained", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        export_student(result, tokenizer, path)
    after = AutoModelForCausalLM.from_pretrained(path).state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "student"]  # no temporary folder left


def test_each_step_records_wall_and_cpu_time_and_the_bench_pools_rounds_by_median(tmp_path, teacher, tokenizer):
    from distill_hetero.bench import pooled

    history = train(tiny_config(tmp_path), teacher, tokenizer, make_examples(tokenizer, 6), progress=False).history
    assert all(h["step_cpu_s"] > 0 and h["step_time_s"] > 0 for h in history)
    rounds = [
        {"mode": "kd", "step_s": [1.0, 9.0], "step_cpu_s": [0.5, 0.7], "tokens_per_step": 10.0,
         "peak_rss_mb": 5.0, "rss_before_training_mb": 1.0, "peak_cuda_mb": None},
        {"mode": "kd", "step_s": [2.0, 3.0], "step_cpu_s": [0.6, 0.9], "tokens_per_step": 10.0,
         "peak_rss_mb": 7.0, "rss_before_training_mb": 2.0, "peak_cuda_mb": None},
    ]  # fmt: skip
    row = pooled(rounds)
    assert (row["rounds"], row["steps"], row["mean_step_s"]) == (2, 4, 3.75)
    assert (row["mean_step_cpu_s"], row["median_step_cpu_s"]) == (pytest.approx(0.675), pytest.approx(0.65))
    assert (row["tokens_per_s"], row["peak_rss_mb"], row["peak_cuda_mb"]) == (pytest.approx(10 / 3.75), 7.0, None)
