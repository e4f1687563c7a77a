import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(out_dir: Path, device: str) -> list[dict]:
    """Run ddp_worker.py in 2 processes (``torch.distributed.run``); each rank's report."""
    worker = Path(__file__).parent / "ddp_worker.py"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            str(worker),
            str(out_dir),
            device,
        ],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in (0, 1)]


def check_in_sync(ranks: list[dict]) -> None:
    assert [r["world_size"] for r in ranks] == [2, 2]
    # 8 facts, 2 per process per step -> 2 steps per epoch, 3 epochs
    assert [r["steps"] for r in ranks] == [6, 6]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # DDP kept the adapters identical
    assert ranks[0]["tracked"] == 8  # the drift trajectory gathers every fact from both processes


def test_two_process_training_stays_in_sync(tmp_path):
    ranks = launch_two_processes(tmp_path, "cpu")
    assert [r["device"] for r in ranks] == ["cpu", "cpu"]
    check_in_sync(ranks)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpu_bf16_training_stays_in_sync(tmp_path):
    ranks = launch_two_processes(tmp_path, "cuda")
    assert [r["device"] for r in ranks] == ["cuda", "cuda"]
    check_in_sync(ranks)
