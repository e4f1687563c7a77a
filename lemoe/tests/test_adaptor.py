import pytest
import torch
from conftest import tiny_config, tiny_model

from lemoe.adaptor import UnsupportedArchitecture, ffn_path
from lemoe.config import AdaptorConfig
from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor
from lemoe.training import encode_pairs

EDITS_A = [EditRequest("the sky is", "green"), EditRequest("paris is in", "spain")]
EDITS_B = [EditRequest("cats say", "moo"), EditRequest("snow is", "hot")]


def _logits(model, enc):
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


def test_finds_ffn_of_both_layouts(kind):
    assert (
        ffn_path(tiny_model(kind), AdaptorConfig(layer=1))
        == {"llama": "model.layers.1.mlp", "gpt2": "transformer.h.1.mlp"}[kind]
    )


def test_untrained_expert_leaves_logits_unchanged(kind, tokenizer):
    model = tiny_model(kind)
    enc = encode_pairs(tokenizer, ["the sky is", "hello"], ["blue", "world"])
    before = _logits(model, enc)
    editor = LEMoEEditor(model, tokenizer, tiny_config())
    editor.adaptor.add_expert(editor.generator)
    assert editor.route(enc["input_ids"], enc["prompt_mask"]).tolist() == [[1.0], [1.0]]  # the expert fires
    assert torch.equal(_logits(model, enc), before)


def test_second_batch_leaves_first_expert_and_key_bit_identical(kind, tokenizer):
    editor = LEMoEEditor(tiny_model(kind), tokenizer, tiny_config(max_steps=5, early_stop_loss=-1.0))
    editor.edit(EDITS_A)
    expert0 = {k: v.clone() for k, v in editor.adaptor.experts[0].state_dict().items()}
    key0 = editor.adaptor.router.keys[0].detach().clone()
    router_before = editor.adaptor.router.down.weight.detach().clone()
    editor.edit(EDITS_B)
    assert editor.adaptor.num_experts == 2
    for name, value in editor.adaptor.experts[0].state_dict().items():
        assert torch.equal(value, expert0[name]), name
    assert torch.equal(editor.adaptor.router.keys[0], key0)
    # the shared router projection did train on the second batch
    assert not torch.equal(editor.adaptor.router.down.weight, router_before)
    # and the base model's own weights never change
    assert all(not p.requires_grad for p in editor.model.parameters())


def test_unknown_architecture_names_the_option(tokenizer):
    class Odd(torch.nn.Module):
        config = type("C", (), {"hidden_size": 8})()

    with pytest.raises(UnsupportedArchitecture, match=r"adaptor\.module_path"):
        ffn_path(Odd(), AdaptorConfig(layer=0))
    with pytest.raises(UnsupportedArchitecture, match=r"adaptor\.module_path='model\.blocks\.\{layer\}\.ffn'"):
        ffn_path(tiny_model("llama"), AdaptorConfig(layer=0, module_path="model.blocks.{layer}.ffn"))
    with pytest.raises(UnsupportedArchitecture, match=r"adaptor\.layer=7"):
        ffn_path(tiny_model("llama"), AdaptorConfig(layer=7))


def test_expert_cap_reuse_last_and_error(tokenizer):
    cfg = tiny_config(max_steps=2, early_stop_loss=-1.0)
    cfg.adaptor.max_experts = 1
    editor = LEMoEEditor(tiny_model("llama"), tokenizer, cfg)
    editor.edit(EDITS_A)
    editor.edit(EDITS_B)
    assert editor.adaptor.num_experts == 1
    assert editor.expert_requests[0] == EDITS_A + EDITS_B
    assert editor.adaptor.memory.experts.tolist() == [0, 0, 0, 0]
    cfg.adaptor.overflow = "error"
    with pytest.raises(RuntimeError, match=r"adaptor\.max_experts=1"):
        editor.edit(EDITS_A)
