import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from infodiffusion.cli import main


def _args(overrides: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in overrides.items()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resume_continues_identically(tmp_path, tiny_overrides):
    o = {
        **tiny_overrides,
        "train.steps": "4",
        "train.checkpoint_every": "2",
        "train.timestep_sampler": "lossaware",
        "model.dropout": "0.1",
        "train.grad_accum": "2",
    }
    assert main(["train", *_args({**o, "output_dir": tmp_path / "full"})]) == 0
    ckpt = tmp_path / "full" / "checkpoints" / "step_2"
    assert (ckpt / "ema" / "model.safetensors").is_file() and not (tmp_path / "full/checkpoints/step_2.tmp").exists()
    assert main(["train", *_args({**o, "output_dir": tmp_path / "resumed", "train.resume": ckpt})]) == 0
    for part in ("model", "ema"):
        a = load_file(str(tmp_path / "full" / part / "model.safetensors"))
        b = load_file(str(tmp_path / "resumed" / part / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    # and the resumed run really trained: its weights differ from the checkpoint it started from
    start = load_file(str(ckpt / "ema" / "model.safetensors"))
    end = load_file(str(tmp_path / "resumed" / "ema" / "model.safetensors"))
    assert any(not torch.equal(start[k], end[k]) for k in start)


def test_bad_batch_size_is_named(tmp_path, capsys, tiny_overrides):
    args = _args({**tiny_overrides, "output_dir": tmp_path, "train.batch_size": "7", "train.grad_accum": "2"})
    assert main(["train", *args]) == 2
    assert "train.batch_size=7 must be divisible by processes (1) x train.grad_accum (2)" in capsys.readouterr().err


def _weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_keep_the_newest_and_each_is_loadable(tmp_path, tiny_overrides):
    from infodiffusion.model import DiffusionTransformer

    out = tmp_path / "run"
    o = {**tiny_overrides, "output_dir": out, "train.steps": "5", "train.checkpoint_every": "1"}
    assert main(["train", *_args({**o, "train.keep_last": "2"})]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_4", "step_5"]
    for part in ("model", "ema"):
        DiffusionTransformer.from_pretrained(out / "checkpoints" / "step_4" / part)
        assert _same(_weights(out / "checkpoints" / "step_5" / part), _weights(out / part)), part
    # a new run in the same folder replaces the old run's checkpoints instead of mixing with them
    assert main(["train", *_args({**o, "train.steps": "2", "train.keep_last": "3"})]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_1", "step_2"]


def test_resume_with_another_config_is_refused_unless_forced(tmp_path, capsys, tiny_overrides):
    out = tmp_path / "run"
    o = {**tiny_overrides, "output_dir": out, "train.steps": "2", "train.checkpoint_every": "1"}
    assert main(["train", *_args(o)]) == 0
    saved = (out / "run_config.json").read_text()
    resume = {**o, "train.resume": out / "checkpoints" / "step_2"}
    capsys.readouterr()
    assert main(["train", *_args({**resume, "train.lr": "0.5", "data.max_train": "32", "train.steps": "3"})]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "differs in 2 key(s)" in err and "train.lr: 0.002 -> 0.5" in err and "data.max_train: 64 -> 32" in err
    assert "train.steps" not in err and "resume_force" in err
    assert (out / "run_config.json").read_text() == saved and not (out / "checkpoints" / "step_3").exists()
    # a longer run of the same config (train.steps is not compared), and a forced one
    assert main(["train", *_args({**resume, "train.steps": "3"})]) == 0
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 3
    again = {**resume, "train.resume": out / "checkpoints" / "step_3", "train.steps": "4", "train.lr": "0.5"}
    assert main(["train", *_args({**again, "train.resume_force": "true"})]) == 0
    assert json.loads((out / "run_config.json").read_text())["train.lr"] == 0.5


def test_a_crash_while_writing_the_final_folder_keeps_the_previous_one(tmp_path, monkeypatch, tiny_overrides):
    from infodiffusion.evaluate import load_model
    from infodiffusion.model import DiffusionTransformer

    out = tmp_path / "run"
    o = {**tiny_overrides, "output_dir": out, "train.steps": "2"}
    assert main(["train", *_args(o)]) == 0
    before = _weights(out / "ema")
    save = DiffusionTransformer.save_pretrained

    def crash_in_final_ema(self, folder, state_dict=None):
        if Path(folder).name.startswith(".ema."):  # the temporary sibling of <run>/ema
            (Path(folder) / "config.json").write_text("{")  # half-written
            raise OSError("disk full")
        save(self, folder, state_dict)

    monkeypatch.setattr(DiffusionTransformer, "save_pretrained", crash_in_final_ema)
    with pytest.raises(OSError, match="disk full"):
        main(["train", *_args({**o, "seed": "1"})])
    assert _same(_weights(out / "ema"), before)
    load_model(out)  # still loads
    assert not [p.name for p in out.iterdir() if p.name.startswith(".ema.")]


def test_a_run_stopped_before_its_last_step_can_be_sampled_and_resumed(tmp_path, monkeypatch, tiny_overrides):
    from infodiffusion import trainer
    from infodiffusion.evaluate import model_folder

    out = tmp_path / "run"
    o = {**tiny_overrides, "output_dir": out, "train.steps": "4", "train.checkpoint_every": "2"}
    update, calls = trainer.EMA.update, []

    def interrupt_at_step_3(self, model):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        update(self, model)

    monkeypatch.setattr(trainer.EMA, "update", interrupt_at_step_3)
    assert main(["train", *_args(o)]) == 130
    monkeypatch.setattr(trainer.EMA, "update", update)
    assert not (out / "ema").exists() and model_folder(out) == out / "checkpoints" / "step_2" / "ema"
    assert main(["sample", *_args(o)]) == 0
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 2
    assert main(["train", *_args({**o, "train.resume": out / "checkpoints" / "step_2"})]) == 0
    assert model_folder(out) == out / "ema" and model_folder(out, use_ema=False) == out / "model"


def _launch_two_processes(command: str, args: list[str], mixed_precision: str) -> None:
    """``accelerate launch --multi_gpu --num_processes 2 -m infodiffusion <command> <args>``.

    With CUDA the two processes take a GPU each (NCCL); without, they are CPU processes over gloo
    (``--cpu`` would start one).
    """
    launcher = Path(sys.executable).parent / "accelerate"
    launch = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", mixed_precision, "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [*launch, "-m", "infodiffusion", command, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]


def _two_process_run(out: Path, overrides: dict, mixed_precision: str) -> tuple[list[str], list[dict]]:
    """Train 3 steps and sample with two processes; the run's args and its samples."""
    args = _args({**overrides, "output_dir": out, "train.steps": "3", "train.mixed_precision": mixed_precision})
    _launch_two_processes("train", args, mixed_precision)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["micro_batch"] == 4 and summary["steps"] == 3
    _launch_two_processes("sample", args, mixed_precision)
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    keys = [(r["source"], r["candidate"]) for r in records]
    assert sorted(keys) == [(i, j) for i in range(4) for j in range(2)], "each candidate exactly once"
    assert len({r["seed"] for r in records}) == len(records)
    return args, records


@pytest.mark.slow
def test_two_process_training_and_sampling(tmp_path, tiny_overrides):
    args, records = _two_process_run(tmp_path / "ddp", tiny_overrides, "no")
    # the same candidates as a single process produces
    assert main(["sample", *args, "--samples", str(tmp_path / "single.jsonl")]) == 0
    single = [json.loads(x) for x in Path(tmp_path / "single.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["hyp"]) for r in single] == [(r["seed"], r["hyp"]) for r in records]


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpu_training_and_sampling_in_bf16(tmp_path, tiny_overrides):
    _two_process_run(tmp_path / "ddp", tiny_overrides, "bf16")


def test_reuse_only_runs_trained_with_the_same_settings(tmp_path, tiny_overrides):
    from infodiffusion.config import InfoDiffusionConfig
    from infodiffusion.reproduce import trained_summary
    from shared_utils.config import load_config

    o = {**tiny_overrides, "output_dir": str(tmp_path / "run"), "train.steps": "2"}
    assert main(["train", *_args(o)]) == 0
    same = load_config(InfoDiffusionConfig, None, {**o, "sample.clamp": "true", "diffusion.sample_schedule": "none"})
    assert trained_summary(same)["steps"] == 2
    assert trained_summary(load_config(InfoDiffusionConfig, None, {**o, "train.lr": "0.5"})) is None
    assert trained_summary(load_config(InfoDiffusionConfig, None, {**o, "diffusion.info_lambda": "1.0"})) is None
