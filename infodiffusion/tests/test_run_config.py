"""``sample``/``eval`` use the run's saved config; conflicting options are refused by name
(issue 14, item 4)."""

import json

import infodiffusion.evaluate
from infodiffusion.cli import main


def test_sample_uses_the_runs_config_and_refuses_a_conflicting_override(tmp_path, capsys, monkeypatch, tiny_overrides):
    run = tmp_path / "run"
    args = [f"--{k}={v}" for k, v in tiny_overrides.items()]
    assert main(["train", *args, "--diffusion.schedule", "sqrt", f"--output_dir={run}"]) == 0
    seen = []
    original = infodiffusion.evaluate.sample_run

    def spy(cfg, run_dir, *a, **k):
        seen.append(cfg)
        return original(cfg, run_dir, *a, **k)

    monkeypatch.setattr(infodiffusion.evaluate, "sample_run", spy)
    # not told the schedule, model shape or seq_len: all come from <run>/config.yaml
    assert main(["sample", "--run", str(run)]) == 0
    cfg = seen[-1]
    assert cfg.diffusion.schedule == "sqrt"
    assert (cfg.model.hidden_size, cfg.data.seq_len, cfg.sample.steps) == (32, 32, 5)
    n_default = len((run / "samples.jsonl").read_text().splitlines())
    # sampling-only options may be changed
    assert main(["sample", "--run", str(run), "--sample.candidates", "1", "--seed", "3"]) == 0
    assert seen[-1].sample.candidates == 1 and seen[-1].seed == 3 and seen[-1].diffusion.schedule == "sqrt"
    assert len((run / "samples.jsonl").read_text().splitlines()) == n_default // 2
    capsys.readouterr()
    # a conflicting option is refused in one line naming it (exit 2), before anything is sampled
    n_calls = len(seen)
    assert main(["sample", "--run", str(run), "--diffusion.schedule", "info", "--model.num_layers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("infodiffusion: error: "), err
    assert "diffusion.schedule" in err[0] and "model.num_layers" not in err[0]  # 2 is the saved value
    assert len(seen) == n_calls
    # eval reads the same saved config (and refuses the same way)
    one = ["--eval.mbr_quality", "1", "--eval.mbr_diversity", "1", "--eval.bertscore_model", ""]
    assert main(["eval", "--run", str(run), *one]) == 0
    assert json.loads((run / "metrics.json").read_text())["config"]["diffusion"]["schedule"] == "sqrt"
    assert main(["eval", "--run", str(run), "--data.seq_len", "40"]) == 2
    assert "data.seq_len" in capsys.readouterr().err
