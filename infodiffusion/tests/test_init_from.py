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
