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


def test_bad_batch_size_is_named(tmp_path, tiny_overrides):
    with pytest.raises(ValueError, match=r"train.batch_size=7 .* train.grad_accum \(2\)"):
        main(
            [
                "train",
                *_args({**tiny_overrides, "output_dir": tmp_path, "train.batch_size": "7", "train.grad_accum": "2"}),
            ]
        )


@pytest.mark.slow
def test_two_process_training_and_sampling(tmp_path, tiny_overrides):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    # `accelerate launch --multi_gpu` without CUDA starts 2 CPU processes over gloo (`--cpu` would start one)
    launcher = Path(sys.executable).parent / "accelerate"
    base = [
        str(launcher),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
    ]
    args = _args({**tiny_overrides, "output_dir": out, "train.steps": "3"})
    subprocess.run(
        [*base, str(_free_port()), "-m", "infodiffusion", "train", *args],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["micro_batch"] == 4 and summary["steps"] == 3
    subprocess.run(
        [*base, str(_free_port()), "-m", "infodiffusion", "sample", *args],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    keys = [(r["source"], r["candidate"]) for r in records]
    assert sorted(keys) == [(i, j) for i in range(4) for j in range(2)], "each candidate exactly once"
    assert len({r["seed"] for r in records}) == len(records)
    # the same candidates as a single process produces
    assert main(["sample", *args, "--samples", str(tmp_path / "single.jsonl")]) == 0
    single = [json.loads(x) for x in Path(tmp_path / "single.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["hyp"]) for r in single] == [(r["seed"], r["hyp"]) for r in records]


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
