import logging
from pathlib import Path

import pytest
import torch

from semantic_peft.adapters import (
    TargetModulesError,
    check_target_modules,
    forward,
    load_adapter,
    load_saved,
    merge,
    save_model,
    wrap_model,
)
from semantic_peft.config import PeftSettings
from semantic_peft.data import encode_pairs


def _perturb(model, scale=0.3):
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("method", ["lora", "ia3", "prompt_tuning", "prefix_tuning"])
def test_save_load_gives_identical_logits(method, tokenizer, facts, tmp_path, make_llama):
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[:4]])
    model = wrap_model(make_llama(), PeftSettings(method=method, num_virtual_tokens=3))
    torch.manual_seed(1)
    _perturb(model)
    expected = forward(model, enc)[0]
    path = save_model(model, tmp_path / "adapter", tokenizer)
    assert (path / "adapter_config.json").is_file()
    assert not list(tmp_path.glob(".adapter.*"))  # no staging folder left behind
    loaded = load_adapter(make_llama(), path)
    assert torch.equal(forward(loaded, enc)[0], expected)


def test_adapter_records_the_base_model_name_and_loads_from_it_elsewhere(
    tokenizer, facts, tmp_path, make_llama, monkeypatch
):
    """The adapter names its base by the configured alias, not the local folder it was loaded from;
    copied to another place (another machine), it loads wherever that alias resolves."""
    import json
    import shutil

    import semantic_peft.experiment as experiment

    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[:4]])
    base_folder = tmp_path / "machine-a-cache" / "tiny-llama"
    make_llama().save_pretrained(base_folder)
    from transformers import LlamaForCausalLM

    model = wrap_model(LlamaForCausalLM.from_pretrained(base_folder), PeftSettings(method="lora"))
    torch.manual_seed(1)
    _perturb(model)
    expected = forward(model, enc)[0]
    assert model.peft_config["default"].base_model_name_or_path == str(base_folder)  # what peft would record
    path = save_model(model, tmp_path / "adapter", tokenizer, base_model="tiny-alias")
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny-alias"
    elsewhere = shutil.copytree(path, tmp_path / "machine-b" / "adapter")
    shutil.rmtree(path)
    shutil.rmtree(base_folder)  # machine A's cache is not there on machine B
    asked = []
    monkeypatch.setattr(experiment, "load_model", lambda name: (asked.append(name), (make_llama(), tokenizer))[1])
    loaded, _ = load_saved(elsewhere)
    assert asked == ["tiny-alias"]
    assert torch.equal(forward(loaded, enc)[0], expected)


def test_crash_while_saving_keeps_the_old_adapter_loadable(tokenizer, facts, tmp_path, make_llama, monkeypatch):
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[:4]])
    model = wrap_model(make_llama(), PeftSettings(method="lora"))
    torch.manual_seed(1)
    _perturb(model)
    old_logits = forward(model, enc)[0]
    path = save_model(model, tmp_path / "adapter", tokenizer)
    _perturb(model)  # the next save would hold other weights

    def crash_half_way(folder, **kwargs):
        (Path(folder) / "adapter_config.json").write_text("{")  # a half-written file, then the crash
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save_pretrained", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, path, tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temporary folder left
    loaded = load_adapter(make_llama(), path)
    assert torch.equal(forward(loaded, enc)[0], old_logits)


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_merge_and_unload_matches(method, tokenizer, facts, make_llama):
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[:4]])
    # float64, so that the only difference a correct merge leaves is rounding far below 1e-10
    model = wrap_model(make_llama().double(), PeftSettings(method=method))
    torch.manual_seed(2)
    _perturb(model)
    expected = forward(model, enc)[0]
    merged = merge(model)
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert not any("lora" in n or "ia3" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(forward(merged, enc)[0], expected, atol=1e-10, rtol=1e-10)


def test_prompt_tuning_cannot_merge(make_llama):
    model = wrap_model(make_llama(), PeftSettings(method="prompt_tuning", num_virtual_tokens=2))
    with pytest.raises(ValueError, match="cannot be merged"):
        merge(model)


def test_unmatched_target_modules_is_an_error(make_llama, make_gpt2):
    model = make_llama()
    with pytest.raises(TargetModulesError, match=r"\['c_attn'\] match no module of LlamaForCausalLM.*q_proj"):
        wrap_model(model, PeftSettings(method="lora", target_modules=["q_proj", "c_attn"]))
    with pytest.raises(TargetModulesError, match="match no module of GPT2LMHeadModel"):
        check_target_modules(make_gpt2(), ["q_proj"])


def test_resolved_target_modules_are_logged(make_gpt2, caplog):
    caplog.set_level(logging.INFO, logger="semantic_peft.adapters")
    wrap_model(make_gpt2(), PeftSettings(method="lora", target_modules=["c_attn", "c_fc"]))
    assert "lora on 4 modules (c_attn, c_fc)" in caplog.text


def test_full_fine_tuning_trains_everything(make_llama):
    model = wrap_model(make_llama(), PeftSettings(method="full"))
    assert all(p.requires_grad for p in model.parameters())
