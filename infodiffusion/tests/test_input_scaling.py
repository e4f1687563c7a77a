"""model.input_scaling (the denoiser reads sqrt(abar_t) x_t at target positions) and
model.freeze_embeddings (word embeddings fixed while the rest trains)."""

import pytest
import torch
from safetensors.torch import load_file

from infodiffusion.cli import main
from infodiffusion.config import ModelConfig
from infodiffusion.diffusion import TextDiffusion
from infodiffusion.information import InformationScores
from infodiffusion.model import DiffusionTransformer
from infodiffusion.schedule import NoiseSchedule, base_alpha_bar

V, L = 20, 12


def _model(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(
        embedding_dim=8, hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64, dropout=0.0, **kw
    )
    return DiffusionTransformer(cfg, V, L).eval()


class _Echo(torch.nn.Module):
    """Stands in for the denoiser: returns the x_t it is handed."""

    def __init__(self, scaling):
        super().__init__()
        self.config = ModelConfig(input_scaling=scaling)

    def forward(self, x_t, t, target_mask, self_cond=None):
        return x_t


@pytest.mark.parametrize("kind", ["sqrt", "linear", "info"])
def test_sqrt_abar_scales_target_positions_only(kind):
    info = InformationScores(torch.linspace(0, 3, V), [0, 1, 2]) if kind == "info" else None
    diffusion = TextDiffusion(NoiseSchedule(kind, 50), info)
    x = torch.randn(3, L, 8)
    mask = torch.zeros(3, L, dtype=torch.long)
    mask[:, 6:] = 1
    t = torch.tensor([1, 25, 50])
    seen = diffusion.denoise(_Echo("sqrt_abar"), x, t, mask)
    base = "linear" if kind == "info" else kind
    scale = base_alpha_bar(base, t.double(), 50).clamp(1e-4, 1 - 1e-4).sqrt().float()
    assert torch.allclose(seen[:, 6:], scale.view(-1, 1, 1) * x[:, 6:])
    assert torch.equal(seen[:, :6], x[:, :6])
    assert float(scale[-1]) < 0.02  # at t = T the target slots are all but empty
    assert torch.equal(diffusion.denoise(_Echo("none"), x, t, mask), x)


def test_input_scaling_is_used_in_training_and_sampling():
    diffusion = TextDiffusion(NoiseSchedule("sqrt", 20))
    ids = torch.randint(3, V, (2, L))
    mask = torch.zeros(2, L, dtype=torch.long)
    mask[:, 6:] = 1
    t = torch.tensor([15, 20])
    plain, scaled = _model(), _model(input_scaling="sqrt_abar")
    torch.manual_seed(1)
    a = diffusion.training_losses(plain, ids, mask, t)["mse"]
    torch.manual_seed(1)
    b = diffusion.training_losses(scaled, ids, mask, t)["mse"]
    assert not torch.allclose(a, b)
    gen = torch.Generator().manual_seed(0)
    out = diffusion.sample(scaled, ids, mask, lambda shape: torch.randn(shape, generator=gen), steps=5)
    assert out["ids"].shape == ids.shape and torch.equal(out["ids"][:, :6], ids[:, :6])


def test_frozen_embeddings_stay_fixed_while_the_rest_trains(tmp_path, tiny_overrides):
    o = {
        **tiny_overrides,
        "train.steps": "3",
        "train.checkpoint_every": "1",
        "train.keep_last": "3",
        "model.freeze_embeddings": "true",
        "output_dir": tmp_path,
    }
    assert main(["train", *[f"--{k}={v}" for k, v in o.items()]]) == 0
    first = load_file(str(tmp_path / "checkpoints" / "step_1" / "model" / "model.safetensors"))
    last = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert torch.equal(first["word_embedding.weight"], last["word_embedding.weight"])
    assert not torch.equal(first["input_up_proj.0.weight"], last["input_up_proj.0.weight"])
    assert not _model(freeze_embeddings=True).word_embedding.weight.requires_grad


def test_pretrained_parameters_get_their_own_lr():
    model = _model(freeze_embeddings=True)
    (group,) = model.param_groups(1e-3, 0.1)  # no init_from: one group
    assert group["lr"] == 1e-3 and all(p.requires_grad for p in group["params"])
    assert len(group["params"]) == len(list(model.parameters())) - 1  # the frozen embedding left out
    model.config.init_from = "minilm-l6"
    new, old = model.param_groups(1e-3, 0.1)
    assert new["lr"] == 1e-3 and old["lr"] == pytest.approx(1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in new["params"]} == {"input_up_proj", "time_embed", "output_down_proj"}
    assert {names[id(p)].split(".")[0] for p in old["params"]} == {"position_embedding", "layer_norm", "encoder"}


def test_unweighted_losses_equal_weighted_ones_under_the_uniform_sampler(tmp_path, tiny_overrides):
    """train.importance_weights false only drops the 1 / (T p_t) factors, which are 1 when t is uniform."""
    out = {}
    for flag in ("true", "false"):
        o = {
            **tiny_overrides,
            "train.steps": "2",
            "train.timestep_sampler": "uniform",
            "train.importance_weights": flag,
            "output_dir": tmp_path / flag,
        }
        assert main(["train", *[f"--{k}={v}" for k, v in o.items()]]) == 0
        out[flag] = load_file(str(tmp_path / flag / "model" / "model.safetensors"))
    assert all(torch.equal(out["true"][k], out["false"][k]) for k in out["true"])
