import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, tiny_model

from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor
from lemoe.training import encode_pairs


def test_save_load_round_trip_gives_identical_logits(kind, tokenizer, tmp_path):
    cfg = tiny_config(max_steps=10)
    cfg.router.null_threshold = "calibrated"
    editor = LEMoEEditor(tiny_model(kind), tokenizer, cfg)
    editor.edit([EditRequest("the sky is", "green"), EditRequest("grass is", "red")])
    editor.edit([EditRequest("water is", "dry")])
    enc = encode_pairs(tokenizer, ["the sky is", "water is", "something else"], ["green", "dry", "x"])
    expected = editor.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"])
    editor.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adaptor.safetensors", "adaptor_config.json"]
    assert json.loads((tmp_path / "adaptor_config.json").read_text())["num_experts"] == 2
    restored = LEMoEEditor.from_pretrained(tiny_model(kind), tmp_path, tokenizer)
    got = restored.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"])
    assert torch.equal(got, expected)
    assert torch.equal(restored.adaptor.memory.threshold, editor.adaptor.memory.threshold)
    # the saved file holds the adaptor only, not the base model's FFN
    from safetensors.torch import load_file

    assert not any(k.startswith("ffn.") for k in load_file(str(tmp_path / "adaptor.safetensors")))


def test_a_crash_while_saving_leaves_the_previous_adaptor_loadable(tokenizer, tmp_path, monkeypatch):
    cfg = tiny_config(max_steps=5)
    editor = LEMoEEditor(tiny_model("llama"), tokenizer, cfg)
    editor.edit([EditRequest("the sky is", "green")])
    folder = tmp_path / "adaptor"
    editor.save_pretrained(folder)
    enc = encode_pairs(tokenizer, ["the sky is"], ["green"])
    expected = editor.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"])
    editor.edit([EditRequest("water is", "dry")])  # a second expert, then a save that dies half-way

    real_write_text = Path.write_text

    def dies_half_way(self, text, *args, **kwargs):  # the weights are written, the config only half
        if self.name.startswith("adaptor_config.json"):
            real_write_text(self, text[: len(text) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        editor.save_pretrained(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["adaptor"]  # no temporary folder left beside it
    restored = LEMoEEditor.from_pretrained(tiny_model("llama"), folder, tokenizer)
    assert restored.adaptor.num_experts == 1
    assert torch.equal(restored.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"]), expected)
