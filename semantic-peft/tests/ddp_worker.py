"""Worker for test_distributed.py and test_gpu.py: one process of a 2-process LoRA training run.

python ddp_worker.py OUT_DIR [cpu|cuda]   (cpu: gloo; cuda: one GPU per process, nccl, bf16)
"""

import json
import sys
from pathlib import Path

import torch

from semantic_peft.adapters import wrap_model
from semantic_peft.builtin_facts import builtin_facts
from semantic_peft.config import PeftSettings, ReweightConfig, TrainConfig
from semantic_peft.training import train
from shared_utils.device import AcceleratorConfig, build_accelerator


def main(out_dir: Path, device: str = "cpu") -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import _word_tokenizer, tiny_llama

    torch.set_num_threads(1)
    cpu = device == "cpu"
    settings = AcceleratorConfig(tracker=None, cpu=cpu, mixed_precision="no" if cpu else "bf16")
    accelerator = build_accelerator(settings, log=False)
    tokenizer = _word_tokenizer()
    model = wrap_model(tiny_llama(len(tokenizer)), PeftSettings(method="lora"))
    history = train(
        model,
        tokenizer,
        builtin_facts(1, 0),
        TrainConfig(epochs=3, batch_size=2, lr=1e-2),
        ReweightConfig(enabled=True),
        accelerator,
    )
    checksum = sum(float(p.detach().double().sum()) for n, p in model.named_parameters() if "lora_" in n)
    (out_dir / f"rank{accelerator.process_index}.json").write_text(
        json.dumps(
            {
                "world_size": accelerator.num_processes,
                "device": accelerator.device.type,
                "steps": history.steps,
                "losses": history.losses,
                "checksum": checksum,
                "tracked": int((~torch.isnan(history.trajectory[-1])).sum()),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
