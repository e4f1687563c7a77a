"""Run by test_distributed.py under `accelerate launch --multi_gpu --num_processes 2`:
``dist_worker.py OUT_DIR cpu`` runs MULTI_CPU over gloo (``accelerator.cpu=True`` and LOCAL_RANK set),
``dist_worker.py OUT_DIR cuda`` one process per GPU over NCCL. One optimizer step of the full method;
rank 0 writes world size, device, first-step loss and parameters (on the CPU)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_examples, make_teacher, make_tokenizer, tiny_config

from distill_hetero.trainer import train


def main(out_dir: str, device: str) -> None:
    tokenizer = make_tokenizer()
    teacher = make_teacher(tokenizer)
    cfg = tiny_config(
        Path(out_dir),
        **{
            "train.steps": 1,
            "loss.intermediate": "mse_ln",
            "loss.weighting": "uncertainty",
            "accelerator.cpu": device == "cpu",
        },
    )
    result = train(cfg, teacher, tokenizer, make_examples(tokenizer, 8), progress=False)
    if result.accelerator.is_main_process:
        torch.save(
            {
                "world_size": result.accelerator.num_processes,
                "device": result.accelerator.device.type,
                "loss": result.history[0]["loss"],
                "params": {k: v.cpu() for k, v in result.distiller.state_dict().items()},
            },
            Path(out_dir) / "rank0.pt",
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
