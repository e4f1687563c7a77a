"""The default no-expert path: the activation gate (lemoe.adaptor), which needs no subject string."""

import functools

import torch
from conftest import plain_forward_is_unedited, tiny_config, tiny_model

from lemoe.adaptor import activation, activation_threshold
from lemoe.config import ExperimentConfig, LEMoEConfig
from lemoe.data import EditRequest, unrelated_text
from lemoe.editor import LEMoEEditor
from lemoe.experiment import check_subjects
from lemoe.training import encode_pairs

BATCHES = [
    [EditRequest("alpha one", "xx"), EditRequest("alpha two", "yy")],  # no subject field anywhere
    [EditRequest("zzzz qqq", "ab")],
]


@functools.cache
def _editor(tokenizer):
    cfg = tiny_config(max_steps=100)
    cfg.router.null_threshold = "activation"
    editor = LEMoEEditor(tiny_model("llama"), tokenizer, cfg)
    for batch in BATCHES:
        editor.edit(batch)
    return editor


def test_activation_is_the_masked_mean_of_expert_output_norms():
    expert = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        expert.weight.copy_(torch.eye(2))
    x = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [100.0, 0.0]]])
    assert torch.allclose(activation(expert, x, torch.tensor([[1, 1, 0]])), torch.tensor([3.0]))
    assert activation_threshold(torch.tensor([10.0, 6.0]), torch.tensor([1.0, 2.0])) == 4.0


def test_default_gate_needs_no_subject():
    assert LEMoEConfig().router.null_threshold == "activation"
    methods = [m for m in ExperimentConfig().methods if m != "lemoe_subject"]  # that row pools the subject span
    check_subjects([EditRequest("a is", "b", "c", "d", "e")], ExperimentConfig(methods=methods))  # raises if needed


def test_edits_fire_their_expert_and_unrelated_text_runs_the_unedited_model(tokenizer):
    # tiny LLaMA only: the tiny random GPT-2 does not separate its edits from the unrelated text in this
    # budget (its edits stay below the threshold, measured once), which is what the gate is for
    editor = _editor(tokenizer)
    thresholds = editor.adaptor.thresholds
    assert thresholds.shape == (2,) and torch.isfinite(thresholds).all() and (thresholds > 0).all()
    requests = [r for batch in BATCHES for r in batch]
    enc = encode_pairs(tokenizer, [r.prompt for r in requests], [r.target for r in requests])
    gate = editor.route(enc["input_ids"], enc["prompt_mask"])
    editor.adaptor.set_instance_gate(gate)
    with torch.no_grad():
        x = editor.ffn_inputs(enc["input_ids"], enc["attention_mask"])
        assert editor.adaptor._activation_gate(gate, x, enc["prompt_mask"]).argmax(-1).tolist() == [0, 0, 1]
    editor.adaptor.set_instance_gate(None)
    p, t = editor.predict([enc])
    assert all(torch.equal(a, b) for a, b in zip(p, t, strict=True))  # every edit fires and is learned
    # held-out unrelated lines (never trained or calibrated on): the unedited model's logits, bit for bit,
    # through the editor's scoring path and through the model's own forward hook
    for text in unrelated_text("builtin", "heldout")[:8]:
        assert plain_forward_is_unedited(editor, text), text
        one = encode_pairs(tokenizer, [text], ["x"])
        edited = editor.logits(one["input_ids"], one["attention_mask"], one["prompt_mask"])
        with editor.detached():
            assert torch.equal(edited, editor.logits(one["input_ids"], one["attention_mask"], one["prompt_mask"]))


def test_generate_keeps_the_activation_decision_of_the_prompt(tokenizer):
    editor = _editor(tokenizer)
    decisions = []
    handle = editor.adaptor.register_forward_hook(lambda m, a, o: decisions.append(m.instance_gate.sum().item()))
    for prompt in ("zzzz qqq", unrelated_text("builtin", "heldout")[0]):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        editor.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False, pad_token_id=0
        )
    handle.remove()
    # the edit fires its expert on the prompt and on every cached step; the unrelated text on none
    assert decisions == [1.0] * 4 + [0.0] * 4


def test_save_load_keeps_the_thresholds(tokenizer, tmp_path):
    editor = _editor(tokenizer)
    editor.save_pretrained(tmp_path)
    restored = LEMoEEditor.from_pretrained(tiny_model("llama"), tmp_path, tokenizer)
    assert torch.equal(restored.adaptor.thresholds, editor.adaptor.thresholds)
