"""On a CUDA device: one bf16 training step, and the train -> sample -> eval commands.

(The 2-GPU launch is ``test_training.py::test_two_gpu_training_and_sampling_in_bf16``.)
"""

import json

import pytest
import torch

from infodiffusion.cli import main
from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.model import DiffusionTransformer
from infodiffusion.run import prepare_artifacts
from shared_utils.config import load_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_bf16_training_step_on_cuda(tiny_overrides):
    cfg = load_config(InfoDiffusionConfig, None, tiny_overrides)
    artifacts = prepare_artifacts(cfg)
    torch.manual_seed(0)
    model = DiffusionTransformer(cfg.model, len(artifacts.vocab), cfg.data.seq_len).cuda()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids, mask = artifacts.train_ids[:8].cuda(), artifacts.train_mask[:8].cuda()
    t = torch.randint(1, cfg.diffusion.steps + 1, (8,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        terms = artifacts.diffusion.training_losses(model, ids, mask, t, self_cond=True)
        loss = terms["loss"].mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_sample_eval_on_cuda_in_bf16(tmp_path, tiny_overrides):
    out = tmp_path / "run"
    args = [f"--{k}={v}" for k, v in {**tiny_overrides, "output_dir": out, "train.mixed_precision": "bf16"}.items()]
    assert main(["train", *args]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 4 and all(torch.isfinite(torch.tensor(h["loss"])) for h in summary["loss_history"])
    assert main(["sample", *args]) == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 2
    assert main(["eval", *args]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["bleu"] <= 1.0 and 0.0 < metrics["bertscore"] <= 1.0
    assert "cuda" in json.loads((out / "metrics.json").read_text())["device"]
