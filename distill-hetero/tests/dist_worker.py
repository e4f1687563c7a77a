"""Run by test_distributed.py under `accelerate launch --multi_gpu --num_processes 2`; with
``accelerator.cpu=True`` and LOCAL_RANK set, accelerate runs MULTI_CPU over gloo:
one optimizer step of the full method; rank 0 writes world size, first-step loss and parameters."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_examples, make_teacher, make_tokenizer, tiny_config

from distill_hetero.trainer import train


def main(out_dir: str) -> None:
    tokenizer = make_tokenizer()
    teacher = make_teacher(tokenizer)
    cfg = tiny_config(
        Path(out_dir), **{"train.steps": 1, "loss.intermediate": "mse_ln", "loss.weighting": "uncertainty"}
    )
    result = train(cfg, teacher, tokenizer, make_examples(tokenizer, 8), progress=False)
    if result.accelerator.is_main_process:
        torch.save(
            {
                "world_size": result.accelerator.num_processes,
                "loss": result.history[0]["loss"],
                "params": result.distiller.state_dict(),
            },
            Path(out_dir) / "rank0.pt",
        )


if __name__ == "__main__":
    main(sys.argv[1])
