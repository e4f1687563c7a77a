"""The fast rounding loss and clamp (issue 14, item 5) compute what the plain versions compute."""

import torch
import torch.nn.functional as F

from infodiffusion.config import ModelConfig
from infodiffusion.diffusion import masked_mean, nearest_embedding, target_cross_entropy
from infodiffusion.model import DiffusionTransformer


def _tiny():
    torch.manual_seed(0)
    model = DiffusionTransformer(
        ModelConfig(embedding_dim=8, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
        vocab_size=50,
        seq_len=12,
    )
    ids = torch.randint(0, 50, (5, 12))
    mask = torch.zeros(5, 12, dtype=torch.long)
    for b, start in enumerate([3, 5, 7, 2, 11]):
        mask[b, start:] = 1
    x = model.embed(ids) + 0.3 * torch.randn(5, 12, 8)
    return model, ids, mask, x


def test_target_only_cross_entropy_equals_the_masked_full_version():
    model, ids, mask, x = _tiny()
    full = masked_mean(F.cross_entropy(model.logits(x).transpose(1, 2), ids, reduction="none"), mask)
    weight = model.word_embedding.weight
    for chunk in (None, 1, 7):  # one chunk, and several (recomputed in backward)
        ours = target_cross_entropy(x, weight, ids, mask, chunk=chunk)
        torch.testing.assert_close(ours, full, atol=1e-6, rtol=0)
        g_ours = torch.autograd.grad(ours.sum(), weight, retain_graph=True)[0]
        g_full = torch.autograd.grad(full.sum(), weight, retain_graph=True)[0]
        torch.testing.assert_close(g_ours, g_full, atol=1e-6, rtol=0)


def test_nearest_embedding_clamp_equals_brute_force():
    torch.manual_seed(1)
    weight = torch.randn(300, 16, dtype=torch.float64)
    x = torch.randn(4, 9, 16, dtype=torch.float64)
    brute = torch.cdist(x.reshape(-1, 16), weight).argmin(-1).reshape(4, 9)
    assert torch.equal(nearest_embedding(x, weight), brute)
    assert torch.equal(nearest_embedding(weight[[5, 17]], weight), torch.tensor([5, 17]))
