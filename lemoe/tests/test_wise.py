import pytest
import torch
from conftest import TOKENIZER, plain_forward_is_unedited, tiny_config, tiny_model

from lemoe.baselines.wise import SideMemory, WISEEditor, shard_mask, ties_merge
from lemoe.config import WISEConfig
from lemoe.data import EditRequest
from lemoe.metrics import build_eval_sets, evaluate

REQUESTS = [
    EditRequest("The sky is", "green", "Above us the sky is", "Dogs are", "nice"),
    EditRequest("Water is", "dry", "The water is", "Cats are", "soft"),
]


def test_ties_merge_elects_the_sign_and_averages_the_agreeing_entries():
    a = torch.tensor([2.0, -1.0, 0.0, 3.0])
    b = torch.tensor([4.0, 3.0, 0.0, -1.0])
    # entry 0: both +, mean 3; entry 1: sum +2 -> + wins, only b agrees: 3; entry 2: none; entry 3: + wins: 3
    assert ties_merge([a, b]).tolist() == [3.0, 3.0, 0.0, 3.0]
    # trimmed to the largest half of each: a keeps 3 and 2, b keeps 4 and 3
    assert ties_merge([a, b], density=0.5).tolist() == [3.0, 3.0, 0.0, 3.0]
    assert ties_merge([torch.tensor([1.0, -0.8, 0.5])], density=1 / 3).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="at least one"):
        ties_merge([])


def test_shard_masks_have_the_density_and_differ():
    g = torch.Generator().manual_seed(0)
    m1, m2 = shard_mask(torch.Size([100, 100]), 0.2, g), shard_mask(torch.Size([100, 100]), 0.2, g)
    assert abs(float(m1.mean()) - 0.2) < 0.02 and not torch.equal(m1, m2)


def test_side_memory_answers_only_rows_whose_activation_reaches_the_threshold():
    proj = torch.nn.Linear(3, 2, bias=False)
    mem = SideMemory(proj)
    mem.served.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    mem.threshold.fill_(1.0)
    a = torch.tensor([[[2.0, 0.0, 0.0]], [[0.5, 1.0, 0.0]]])  # Δ = 2 (side) and 0.5 (main)
    mem.decide_mask = torch.ones(2, 1)
    out = mem(a)
    assert mem.use_side.tolist() == [True, False]
    assert torch.equal(out[1], proj(a)[1]) and torch.allclose(out[0], proj(a)[0] + torch.tensor([2.0, 0.0]))
    assert torch.equal(mem(a)[1], proj(a)[1])  # the decision is kept for the next (cached) step


def _editor(kind, **wise):
    cfg = tiny_config(max_steps=100)
    settings = WISEConfig(**{"lr": 3e-2, "act_weight": 1.0, **wise})
    return WISEEditor(tiny_model(kind), TOKENIZER, cfg.adaptor, cfg.train, settings)


def _routed(editor, prompts: list[str]) -> list[bool]:
    """Whether the side memory answers each prompt (decided on a plain forward, as in ``generate``)."""
    out = []
    for prompt in prompts:
        ids = torch.tensor([TOKENIZER(prompt)["input_ids"]])
        with torch.no_grad():
            editor.model(input_ids=ids)
        out.append(bool(editor.memory.use_side[0]))
    return out


def test_wise_routes_edits_to_the_side_memory_and_leaves_unrelated_prompts_bit_identical(kind):
    editor = _editor(kind, margin_unrelated=0.05, margin_edit=0.5, margin_gap=0.4, merge_every=2)
    main = editor.memory.proj.weight.detach().clone()
    sets = build_eval_sets(editor.model, TOKENIZER, REQUESTS, layer=1)
    with editor.detached():
        before = evaluate(editor, sets)
    editor.edit(REQUESTS[:1])
    assert torch.equal(editor.memory.served, editor.shards[0])  # one shard: the merge is the shard itself
    editor.edit(REQUESTS[1:])
    assert [h["sequences"] for h in editor.history] == [1, 1]  # a batch trains on its own edits only
    assert editor.shards == [] and torch.equal(editor.base, editor.memory.served)  # merge_every=2: consolidated
    assert torch.equal(editor.memory.proj.weight, main)  # the main memory never moves
    assert _routed(editor, [r.prompt for r in REQUESTS]) == [True, True]
    assert _routed(editor, ["Dogs are", "Cats are"]) == [False, False]
    assert plain_forward_is_unedited(editor, "Dogs are")
    after = evaluate(editor, sets)
    assert after["loc"] == 1.0 and after["rel"] > before["rel"] + 0.2


def test_each_shard_writes_only_its_subspace():
    editor = _editor("llama", merge_every=10)
    editor.edit(REQUESTS[:1])
    shard = editor.shards[0]
    assert shard.ne(0).any()
    g = torch.Generator().manual_seed(0)  # the editor's first mask, drawn again
    mask = shard_mask(shard.shape, 0.2, g)
    assert torch.all(shard[mask == 0] == 0)
