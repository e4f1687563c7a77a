import functools

import torch
from conftest import tiny_config, tiny_model

from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor
from lemoe.routing import AnchorMemory, pooled_embedding, topk_gate
from lemoe.training import encode_pairs

BATCHES = [
    [EditRequest("alpha one", "xx"), EditRequest("alpha two", "yy")],
    [EditRequest("zzzz qqq", "ab"), EditRequest("zzzz rrr", "cd")],
    [EditRequest("mmmm", "ef")],
]


@functools.cache
def _routed_editor(tokenizer, kind="llama", null="none"):
    """Three batches edited into a tiny model (built once per setting: the tests only read it)."""
    cfg = tiny_config(max_steps=40)
    cfg.router.null_threshold = null
    editor = LEMoEEditor(tiny_model(kind), tokenizer, cfg)
    for batch in BATCHES:
        editor.edit(batch)
    return editor


def test_topk_gate_hand_computed():
    scores = torch.log(torch.tensor([[0.1, 0.6, 0.3]]))
    assert torch.allclose(topk_gate(scores, 1), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.allclose(topk_gate(scores, 2), torch.tensor([[0.0, 0.6 / 0.9, 0.3 / 0.9]]))


def test_pooled_embedding_excludes_masked_tokens():
    emb = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    assert torch.equal(pooled_embedding(emb, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 1.0]]))


def test_same_expert_for_prompt_alone_and_with_target(kind, tokenizer):
    editor = _routed_editor(tokenizer, kind)
    requests = [r for batch in BATCHES for r in batch]
    prompts = [r.prompt for r in requests]
    with_target = encode_pairs(tokenizer, prompts, [r.target for r in requests])
    alone = encode_pairs(tokenizer, prompts, ["q"] * len(prompts))  # prompt tokens + one dummy answer token
    routed_with = editor.routed_expert(with_target["input_ids"], with_target["prompt_mask"])
    routed_alone = editor.routed_expert(alone["input_ids"], alone["prompt_mask"])
    assert torch.equal(routed_with, routed_alone)
    # every edit is routed to the expert trained on its batch
    assert routed_with.tolist() == [0, 0, 1, 1, 2]
    # the model's own hook (plain forward on the bare prompt) reaches the same decision
    for i, prompt in enumerate(prompts):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        with torch.no_grad():
            editor.model(input_ids=ids)
        assert editor.adaptor.instance_gate.argmax(-1).item() == routed_alone[i].item()


def test_generate_keeps_the_prompt_decision(tokenizer):
    editor = _routed_editor(tokenizer)
    ids = torch.tensor([tokenizer("zzzz qqq")["input_ids"]])
    decisions = []
    handle = editor.adaptor.register_forward_pre_hook(lambda m, a: decisions.append(m.instance_gate.argmax(-1).item()))
    editor.model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False, pad_token_id=0
    )
    handle.remove()
    assert len(decisions) == 4 and set(decisions) == {1}


def test_calibrated_threshold_gives_no_expert_to_unrelated_prompts(tokenizer):
    memory = AnchorMemory(4)
    memory.add(
        torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.9, 0.1]]), 0
    )
    threshold = memory.calibrate(0.0)
    # each anchor has a close partner, so even the lowest nearest-other similarity is high
    assert threshold > 0.9
    assert memory.similarity(torch.tensor([[0.95, 0.05, 0.0, 0.0]])).item() >= threshold
    assert memory.similarity(torch.tensor([[-1.0, 0.0, -1.0, 0.0]])).item() < threshold
    editor = _routed_editor(tokenizer, "llama", "calibrated")
    assert torch.isfinite(editor.adaptor.memory.threshold)  # calibrated after every batch
    enc = encode_pairs(tokenizer, ["alpha one", "!!!!!!!!!!!!"], ["xx", "zz"])
    editor.adaptor.memory.threshold.fill_(0.99)  # an edit prompt itself has similarity 1
    routed = editor.routed_expert(enc["input_ids"], enc["prompt_mask"])
    assert routed.tolist() == [0, -1]
    expected_unrelated = editor.adaptor.memory.similarity(editor.pool(enc["input_ids"], enc["prompt_mask"])[0])[1]
    assert expected_unrelated < 0.99
