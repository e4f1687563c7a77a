import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import make_examples, tiny_config

from distill_hetero.trainer import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_taken(stderr: str) -> bool:
    text = stderr.lower()
    return "address already in use" in text or "eaddrinuse" in text


def _launch_two_processes(out_dir: Path, device: str) -> dict:
    """``accelerate launch`` of dist_worker.py on 2 processes; what its rank 0 saved."""
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("accelerate launcher not installed next to this python")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    # The port is free when picked but may be taken before the workers bind it (other jobs on the machine):
    # a launch that failed only for that is retried on a new port; any other failure fails the test.
    for attempt in range(3):
        cmd = [
            launcher,
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
            str(_free_port()),
            str(Path(__file__).parent / "dist_worker.py"),
            str(out_dir),
            device,
        ]
        # generous limit: a safety net against a hung launch on a loaded 2-core machine, not a timing assertion
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if out.returncode == 0 or not _port_taken(out.stderr) or attempt == 2:
            break
    assert out.returncode == 0, out.stderr[-3000:]
    return torch.load(out_dir / "rank0.pt")


def _one_process_two_micro_batches(tmp_path, teacher, tokenizer):
    cfg = tiny_config(
        tmp_path / "one",
        **{
            "train.steps": 1,
            "loss.intermediate": "mse_ln",
            "loss.weighting": "uncertainty",
            "accelerator.gradient_accumulation_steps": 2,
        },
    )
    one = train(cfg, teacher, tokenizer, make_examples(tokenizer, 8), progress=False)
    assert one.accelerator.num_processes == 1
    return one


@pytest.mark.slow
def test_two_process_run_agrees_with_one_process_on_the_first_step(tmp_path, teacher, tokenizer):
    """2 processes x micro-batch 2 (gloo) == 1 process x 2 accumulated micro-batches of 2: same examples,
    same first-step loss, same parameters after the step."""
    two = _launch_two_processes(tmp_path / "dist", "cpu")
    assert two["world_size"] == 2 and two["device"] == "cpu"
    one = _one_process_two_micro_batches(tmp_path, teacher, tokenizer)
    assert two["loss"] == pytest.approx(one.history[0]["loss"], rel=1e-5)
    for key, value in one.distiller.state_dict().items():
        torch.testing.assert_close(two["params"][key], value, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpu_run_agrees_with_one_cpu_process_on_the_first_step(tmp_path, teacher, tokenizer):
    """The same step on 2 GPUs (NCCL, fp32): same loss and parameters as 1 CPU process, to GPU rounding."""
    two = _launch_two_processes(tmp_path / "dist", "cuda")
    assert two["world_size"] == 2 and two["device"] == "cuda"
    one = _one_process_two_micro_batches(tmp_path, teacher, tokenizer)
    assert two["loss"] == pytest.approx(one.history[0]["loss"], rel=1e-3)
    for key, value in one.distiller.state_dict().items():
        torch.testing.assert_close(two["params"][key], value, rtol=1e-3, atol=1e-4, msg=key)
