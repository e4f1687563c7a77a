"""model.init_from: the denoiser starts from the embedded MiniLM's layers and word embeddings."""

import pytest
import torch

from infodiffusion.config import ModelConfig
from infodiffusion.model import DiffusionTransformer, init_from_encoder
from shared_utils.errors import ConfigError
from shared_utils.models import load_encoder

MINILM = {"embedding_dim": 384, "hidden_size": 384, "num_heads": 12, "intermediate_size": 1536}


def test_init_from_minilm_copies_layers_positions_and_kept_word_embeddings():
    full_ids = [0, 101, 102, 100, 2154, 7592]  # pad, cls, sep, unk and two words, compact order
    model = DiffusionTransformer(ModelConfig(**MINILM, num_layers=2, init_from="minilm-l6"), len(full_ids), 16)
    init_from_encoder(model, "minilm-l6", full_ids)
    encoder, _ = load_encoder("minilm-l6")
    for mine, theirs in zip(model.encoder.layer, encoder.encoder.layer[:2]):
        for key, value in theirs.state_dict().items():
            assert torch.equal(mine.state_dict()[key], value), key
    assert torch.equal(model.position_embedding.weight, encoder.embeddings.position_embeddings.weight[:16])
    words = encoder.embeddings.word_embeddings.weight[full_ids]
    assert torch.allclose(model.word_embedding.weight, words / words.std())
    assert model.word_embedding.weight.std().item() == pytest.approx(1.0, abs=1e-5)


def test_init_from_refuses_widths_that_do_not_match_naming_them():
    cfg = ModelConfig(**{**MINILM, "intermediate_size": 512}, num_layers=7, init_from="minilm-l6")
    with pytest.raises(ConfigError, match=r"intermediate_size=512 \(needs 1536\).*model.num_layers=7 \(at most 6\)"):
        init_from_encoder(DiffusionTransformer(cfg, 4, 16), "minilm-l6", [0, 101, 102, 100])


def _identity_model(num_layers=2, self_conditioning=False):
    # pad, cls, sep, unk, then "what is the best way to learn english ?"
    full_ids = [0, 101, 102, 100, 2054, 2003, 1996, 2190, 2126, 2000, 4553, 2394, 1029]
    cfg = ModelConfig(
        **MINILM,
        num_layers=num_layers,
        init_from="minilm-l6",
        init_projections="identity",
        self_conditioning=self_conditioning,
        dropout=0.0,
    )
    model = DiffusionTransformer(cfg, len(full_ids), 16)
    init_from_encoder(model, "minilm-l6", full_ids)
    return model.eval(), full_ids


def test_identity_projections_hand_the_encoder_the_pretrained_embedding_scale():
    model, full_ids = _identity_model(self_conditioning=True)
    encoder, _ = load_encoder("minilm-l6")
    native = encoder.embeddings.word_embeddings.weight[full_ids]
    x = model.word_embedding.weight[None]  # unit-std copies of the pretrained embeddings
    up = model.input_up_proj(torch.cat([x, torch.randn_like(x)], -1))  # self-cond. channel starts ignored
    # tanh(a x) ≈ a x: exact up to the cubic term, which bends only the few outlier components
    cosine = torch.nn.functional.cosine_similarity(up[0], native, dim=-1)
    assert cosine[4:].min() > 0.99  # words
    assert cosine.min() > 0.95  # [CLS] has the largest outliers
    assert (up[0] - native).abs().mean() < 0.02 * native.abs().mean()
    assert torch.equal(model.time_embed(torch.randn(2, 384)), torch.zeros(2, 384))
    expected = encoder.embeddings.position_embeddings.weight[:16] + encoder.embeddings.token_type_embeddings.weight[0]
    assert torch.allclose(model.position_embedding.weight, expected)


def test_identity_projections_round_clean_inputs_back_to_their_words_at_init():
    # the random projections hand the pretrained encoder random features: argmax rounding of x0-hat
    # recovers no token at init; the identity-like ones pass the words through (issue 14 dev diagnostics)
    model, full_ids = _identity_model()
    ids = torch.tensor([[1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 2, 4, 5, 6, 7, 8]])
    mask = torch.tensor([[0] * 11 + [1] * 5])
    with torch.no_grad():
        x0_hat = model(model.embed(ids), torch.tensor([1]), mask)
        accuracy = (model.logits(x0_hat).argmax(-1) == ids).float().mean().item()
        assert accuracy >= 0.9
        assert x0_hat.std().item() == pytest.approx(1.0, rel=0.5)
        torch.manual_seed(0)
        random_cfg = ModelConfig(**{**MINILM, "dropout": 0.0}, num_layers=2, init_from="minilm-l6")
        random_model = DiffusionTransformer(random_cfg, len(full_ids), 16).eval()
        init_from_encoder(random_model, "minilm-l6", full_ids)
        x0_random = random_model(random_model.embed(ids), torch.tensor([1]), mask)
        assert (random_model.logits(x0_random).argmax(-1) == ids).float().mean().item() < 0.5


def test_identity_projections_need_a_pretrained_encoder():
    with pytest.raises(ConfigError, match=r"init_projections identity needs model\.init_from"):
        DiffusionTransformer(ModelConfig(**MINILM, init_projections="identity"), 8, 16)


def test_restarted_target_positions_share_the_source_words_ids():
    """model.target_positions restart: target word k gets the position id of source word k; the
    segment embedding starts as MiniLM's token type embeddings (0: source, 1: target)."""
    cfg = ModelConfig(**MINILM, num_layers=1, init_from="minilm-l6", target_positions="restart")
    model = DiffusionTransformer(cfg, 4, 8)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1, 1]])  # [CLS] src.. [SEP] | trg..
    assert model.position_ids(mask).tolist() == [[0, 1, 2, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 1, 2, 3]]
    continued = DiffusionTransformer(ModelConfig(**MINILM, num_layers=1), 4, 8)
    assert continued.position_ids(mask).tolist() == [list(range(8))] * 2
    assert not hasattr(continued, "segment_embedding")
    init_from_encoder(model, "minilm-l6", [0, 101, 102, 100])
    encoder, _ = load_encoder("minilm-l6")
    assert torch.equal(model.segment_embedding.weight, encoder.embeddings.token_type_embeddings.weight[:2])
    # the segment tells the halves apart: the same inputs at the same position ids give other outputs
    x = torch.randn(1, 8, 384)
    ids_same = torch.tensor([[0, 1, 2, 1, 2, 3, 4, 5]])
    assert torch.equal(model.position_ids(mask[:1]), ids_same)
    with torch.no_grad():
        out = model.eval()(x, torch.tensor([3]), mask[:1])
        swapped = model(x, torch.tensor([3]), 1 - mask[:1])
    assert not torch.allclose(out, swapped)
