"""CUDA checks for the GPU runners (skipped without a GPU): a bf16 training step of the tiny
LLaMA, and a short `semantic-peft train` through the real entry point. The 2-GPU launch is in
test_distributed.py."""

import json
import math

import pytest
import torch

from semantic_peft.adapters import load_adapter, wrap_model
from semantic_peft.cli import main
from semantic_peft.config import PeftSettings, ReweightConfig, TrainConfig
from semantic_peft.training import train
from shared_utils.device import AcceleratorConfig, build_accelerator

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_training_step_on_cuda(tokenizer, make_llama, facts):
    accelerator = build_accelerator(AcceleratorConfig(tracker=None, mixed_precision="bf16"), log=False)
    assert accelerator.device.type == "cuda" and accelerator.mixed_precision == "bf16"
    model = wrap_model(make_llama(), PeftSettings(method="lora"))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    settings = TrainConfig(epochs=2, batch_size=4, lr=1e-2)
    history = train(model, tokenizer, facts[:4], settings, ReweightConfig(enabled=True), accelerator)
    assert history.steps == 2 and all(math.isfinite(loss) for loss in history.losses)
    after = dict(model.named_parameters())
    assert all(after[n].device.type == "cuda" and after[n].dtype == torch.float32 for n in before)
    assert any(not torch.equal(after[n].detach().cpu(), p.cpu()) for n, p in before.items())  # it learned


def test_train_command_on_cuda(tmp_path, tokenizer, make_llama):
    model_dir = tmp_path / "tiny"
    make_llama().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    facts = tmp_path / "facts.jsonl"
    records = [("Alice lives in", "Wonderland", "Alice's home is"), ("Bob owns a red", "car", "Bob owns a")]
    unrelated = [{"prompt": "The sky is", "target": "blue"}]
    lines = [json.dumps({"prompt": p, "target": t, "paraphrases": [q], "unrelated": unrelated}) for p, t, q in records]
    facts.write_text("\n".join(lines) + "\n")
    options = ["--model", str(model_dir), "--data.source", str(facts), "--output_dir", str(tmp_path / "runs")]
    options += ["--accelerator.tracker", "none", "--accelerator.mixed_precision", "bf16", "--name", "gpu"]
    assert main(["train", *options, "--train.epochs", "2", "--analysis.figures", "false"]) == 0
    results = json.loads((tmp_path / "runs" / "gpu" / "results.json").read_text())
    assert results["device"].startswith("cuda") and results["metrics"]["optimizer_steps"] == 2
    assert math.isfinite(results["metrics"]["final_loss"])
    assert load_adapter(make_llama(), tmp_path / "runs" / "gpu" / "adapter") is not None
