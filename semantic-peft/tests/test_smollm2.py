"""Integration tests on the embedded SmolLM2-135M-Instruct (slow: ~1-2 s to load, a few forward passes)."""

import pytest
import torch

from semantic_peft.adapters import adapter_disabled, forward, wrap_model
from semantic_peft.config import PeftSettings
from semantic_peft.data import encode_pairs
from semantic_peft.semantic import measure_distances

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from shared_utils.models import EmbeddedModelMissing, load_causal_lm

    try:
        return load_causal_lm("smollm2-135m-instruct")
    except EmbeddedModelMissing as err:
        pytest.skip(str(err))


def test_tokenizer_round_trip(smollm2):
    _, tokenizer = smollm2
    ids = tokenizer("The capital of France is Paris")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "ĠParis"]
    assert tokenizer.decode(ids) == "The capital of France is Paris"


def test_known_facts_are_closer_than_invented_ones(smollm2):
    model, tokenizer = smollm2
    enc = encode_pairs(
        tokenizer,
        [
            ("The capital of France is", "Paris"),
            ("The capital of Japan is", "Tokyo"),
            ("The capital of Zorvania is", "Quelmarhaven"),
            ("The capital of Thaeskistan is", "Vourndgrad"),
        ],
    )
    d = measure_distances(model, enc)
    assert d[:2].max() < d[2:].min()
    assert d[:2].max() < 0.5


def test_lora_on_smollm2_disables_to_the_base_exactly(smollm2):
    model, tokenizer = smollm2
    enc = encode_pairs(tokenizer, [("The capital of France is", "Paris")])
    base = forward(model, enc)[0].detach().clone()
    peft_model = wrap_model(
        model, PeftSettings(method="lora", target_modules=["q_proj", "v_proj"], layers_to_transform=[28, 29])
    )
    try:
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.fill_(0.01)
        assert not torch.allclose(forward(peft_model, enc)[0], base, atol=1e-4)
        with adapter_disabled(peft_model):
            assert torch.equal(forward(peft_model, enc)[0], base)
    finally:
        peft_model.unload()
