import pytest
import torch

from infodiffusion.config import InfoDiffusionConfig, SampleConfig
from infodiffusion.data import decode
from infodiffusion.diffusion import TimestepSampler
from infodiffusion.model import DiffusionTransformer
from infodiffusion.run import prepare_artifacts
from infodiffusion.sampling import generate


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["info"])
def test_tiny_model_overfits_eight_pairs(schedule):
    cfg = InfoDiffusionConfig()
    cfg.data.max_train, cfg.data.seq_len = 8, 32
    cfg.model.embedding_dim, cfg.model.hidden_size, cfg.model.num_layers = 16, 64, 2
    cfg.model.intermediate_size, cfg.model.dropout = 128, 0.0
    cfg.diffusion.schedule, cfg.diffusion.steps = schedule, 50
    torch.manual_seed(0)
    art = prepare_artifacts(cfg)
    model = DiffusionTransformer(cfg.model, len(art.vocab), cfg.data.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sampler = TimestepSampler("uniform", cfg.diffusion.steps)
    for step in range(500):
        t, _ = sampler.sample(8)
        terms = art.diffusion.training_losses(model, art.train_ids, art.train_mask, t, self_cond=step % 2 == 0)
        terms["loss"].mean().backward()
        opt.step()
        opt.zero_grad()
    out = generate(
        model,
        art.diffusion,
        art.train_ids,
        art.train_mask,
        SampleConfig(method="ddim", steps=10, clamp=True, batch_size=8),
        seed=0,
        n_candidates=1,
        progress=False,
    )
    hyps = decode(torch.stack([r["ids"] for r in out]), art.train_mask, art.vocab, art.tokenizer)
    refs = decode(art.train_ids, art.train_mask, art.vocab, art.tokenizer)
    exact = sum(h == r for h, r in zip(hyps, refs))
    assert exact >= 7, list(zip(hyps, refs))
