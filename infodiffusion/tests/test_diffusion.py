import pytest
import torch

from infodiffusion.config import ModelConfig, SampleConfig
from infodiffusion.diffusion import TextDiffusion, TimestepSampler, q_sample
from infodiffusion.information import InformationScores
from infodiffusion.model import DiffusionTransformer
from infodiffusion.sampling import SeededNoise, generate
from infodiffusion.schedule import NoiseSchedule

V, L = 20, 12
SPECIALS = [0, 1, 2]


def tiny_model(self_conditioning=True, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        embedding_dim=8,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        dropout=0.0,
        self_conditioning=self_conditioning,
    )
    return DiffusionTransformer(cfg, V, L).eval()


def info_diffusion(steps=20, lam=0.5):
    scores = InformationScores(torch.linspace(0, 3, V), SPECIALS)
    return TextDiffusion(NoiseSchedule("info", steps, lam), scores)


def batch(n=3):
    ids = torch.randint(3, V, (n, L))
    mask = torch.zeros(n, L, dtype=torch.long)
    mask[:, 5:] = 1
    ids[:, 0], ids[:, 4] = 1, 2
    return ids, mask


def test_q_sample_never_touches_source_positions():
    _, mask = batch()
    x0 = torch.randn(3, L, 8)
    xt = q_sample(x0, torch.full((3, L), 0.3), torch.randn(3, L, 8), mask)
    assert torch.equal(xt[:, :5], x0[:, :5])
    assert not torch.allclose(xt[:, 5:], x0[:, 5:])


@pytest.mark.parametrize("method, steps, clamp", [("ddim", 5, True), ("ddpm", None, False), ("ddim", 20, False)])
def test_sampling_keeps_source_ids_and_inputs(method, steps, clamp):
    model, diffusion = tiny_model(), info_diffusion()
    ids, mask = batch()
    seen = []
    original = model.forward

    def spy(x, t, target_mask, self_cond=None):
        seen.append(x[:, :5].clone())
        return original(x, t, target_mask, self_cond)

    model.forward = spy
    out = diffusion.sample(
        model, ids * (1 - mask), mask, SeededNoise([1, 2, 3]), method=method, steps=steps, clamp=clamp, record=True
    )
    source_emb = model.embed(ids)[:, :5]
    assert all(torch.equal(x, source_emb) for x in seen), "source re-imposed before every model call"
    assert torch.equal(out["ids"][:, :5], ids[:, :5])
    assert all(torch.equal(step[:, :5], ids[:, :5]) for step in out["trajectory"])
    assert len(out["grid"]) == (steps or 20) and len(seen) == len(out["grid"])


def test_self_conditioning_changes_only_the_target_part_of_its_channel():
    model = tiny_model()
    _, mask = batch()
    x_t, prev = torch.randn(3, L, 8), torch.randn(3, L, 8)
    without = model.build_input(x_t, mask, None)
    with_sc = model.build_input(x_t, mask, prev)
    assert without.shape == with_sc.shape == (3, L, 16)
    assert torch.equal(with_sc[..., :8], x_t) and torch.equal(without[..., :8], x_t)
    assert torch.equal(without[..., 8:], torch.zeros(3, L, 8))
    assert torch.equal(with_sc[:, :5, 8:], torch.zeros(3, 5, 8))
    assert torch.equal(with_sc[:, 5:, 8:], prev[:, 5:])
    assert tiny_model(self_conditioning=False).build_input(x_t, mask, prev) is x_t


def test_self_conditioning_pass_feeds_detached_first_prediction():
    model, diffusion = tiny_model(), info_diffusion()
    ids, mask = batch()
    calls = []
    original = model.forward

    def spy(x, t, target_mask, self_cond=None):
        out = original(x, t, target_mask, self_cond)
        calls.append((self_cond, out, torch.is_grad_enabled()))
        return out

    model.forward = spy
    diffusion.training_losses(model, ids, mask, torch.tensor([3, 7, 20]), self_cond=True)
    assert len(calls) == 2
    assert calls[0][0] is None and calls[0][2] is False
    assert torch.equal(calls[1][0], calls[0][1]) and calls[1][2] is True
    calls.clear()
    diffusion.training_losses(model, ids, mask, torch.tensor([3, 7, 20]), self_cond=False)
    assert len(calls) == 1 and calls[0][0] is None


def test_training_losses_use_per_token_schedule_from_targets():
    diffusion = info_diffusion(lam=1.0)
    ids, mask = batch()
    e = diffusion.token_info(ids, mask)
    assert e.shape == (3, L) and torch.equal(e[:, :5], torch.zeros(3, 5)) and e[:, 5:].abs().sum() > 0
    terms = diffusion.training_losses(tiny_model(), ids, mask, torch.tensor([1, 10, 20]))
    assert set(terms) == {"loss", "mse", "prior", "rounding"} and terms["loss"].shape == (3,)
    assert torch.allclose(terms["loss"], terms["mse"] + terms["prior"] + terms["rounding"])


def test_seeded_sampling_does_not_depend_on_batching():
    model, diffusion = tiny_model(), info_diffusion()
    ids, mask = batch(5)
    cfg = SampleConfig(method="ddpm", clamp=True, batch_size=4)
    a = generate(model, diffusion, ids, mask, cfg, seed=3, n_candidates=2, progress=False)
    cfg.batch_size = 3
    b = generate(model, diffusion, ids, mask, cfg, seed=3, n_candidates=2, progress=False)
    assert [(r["source"], r["candidate"], r["seed"]) for r in a] == [
        (r["source"], r["candidate"], r["seed"]) for r in b
    ]
    assert all(torch.equal(x["ids"], y["ids"]) for x, y in zip(a, b))
    assert len({r["seed"] for r in a}) == 10
    shards = [generate(model, diffusion, ids, mask, cfg, 3, 2, rank=r, world=2, progress=False) for r in (0, 1)]
    keys = sorted((r["source"], r["candidate"]) for s in shards for r in s)
    assert keys == sorted((r["source"], r["candidate"]) for r in a)


def test_loss_aware_sampler_prefers_high_loss_steps():
    sampler = TimestepSampler("lossaware", 4, history=2)
    assert torch.allclose(torch.from_numpy(sampler.weights()), torch.full((4,), 0.25, dtype=torch.float64))
    for _ in range(2):
        sampler.update(torch.tensor([1, 2, 3, 4]), torch.tensor([1.0, 1.0, 1.0, 5.0]))
    w = sampler.weights()
    assert w[3] > 0.5 and w[0] == pytest.approx(w[1])
    t, weights = sampler.sample(1000, torch.Generator().manual_seed(0))
    assert t.min() >= 1 and t.max() <= 4 and (t == 4).float().mean() > 0.5
    assert torch.allclose(weights[t == 4], torch.tensor(1 / (4 * w[3])).float())
