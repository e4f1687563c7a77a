import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_training_stays_in_sync(tmp_path):
    worker = Path(__file__).parent / "ddp_worker.py"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
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
            str(tmp_path),
        ],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # 8 facts, 2 per process per step -> 2 steps per epoch, 3 epochs
    assert [r["steps"] for r in ranks] == [6, 6]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # DDP kept the adapters identical
    assert ranks[0]["tracked"] == 8  # the drift trajectory gathers every fact from both processes
