import pytest
import torch
from conftest import tiny_config, tiny_model

from lemoe.baselines import FTLEditor, LoRAEditor
from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor
from lemoe.metrics import build_eval_sets, evaluate, greedy
from lemoe.training import continuation_kl, continuation_logits, encode_pairs

EDIT = [EditRequest("the sky is", "green", rephrase="the sky is", locality_prompt="dogs are", locality_answer="nice")]


def test_one_edit_reaches_rel_one(kind, tokenizer):
    model = tiny_model(kind)
    sets = build_eval_sets(model, tokenizer, EDIT, layer=1)
    editor = LEMoEEditor(model, tokenizer, tiny_config())
    before = evaluate(editor, sets)
    editor.edit(EDIT)
    after = evaluate(editor, sets)
    assert before["rel"] < 1.0
    assert after["rel"] == 1.0 and after["rel_em"] == 1.0
    # greedy generate reproduces the target: the exact-match shortcut agrees with generate
    generated, targets = greedy(editor, [EDIT[0].prompt], [EDIT[0].target])
    assert torch.equal(generated[0], targets[0])


def test_prefix_cache_and_full_forward_train_identically(tokenizer):
    results = []
    for cache in (True, False):
        editor = LEMoEEditor(
            tiny_model("llama"), tokenizer, tiny_config(max_steps=3, early_stop_loss=-1.0, cache_prefix=cache)
        )
        editor.edit(EDIT)
        results.append(torch.cat([p.flatten() for p in editor.adaptor.experts[0].parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_ftl_changes_only_the_chosen_module(tokenizer):
    model = tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = tiny_config(max_steps=3, early_stop_loss=-1.0)
    FTLEditor(model, tokenizer, cfg.adaptor, cfg.train, lr=1e-2).edit(EDIT)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"model.layers.1.mlp.down_proj.weight"}


def test_lora_trains_only_adapters_of_the_layer(kind, tokenizer):
    model = tiny_model(kind)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = tiny_config(max_steps=3, early_stop_loss=-1.0)
    editor = LoRAEditor(model, tokenizer, cfg.adaptor, cfg.train, lr=1e-2)
    editor.edit(EDIT)
    after = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items()}
    assert all(torch.equal(after[k], v) for k, v in before.items())  # base weights untouched
    lora_names = [k for k in after if "lora_" in k]
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora_names if "lora_B" in k)
    assert lora_names and all(".1.mlp." in k for k in lora_names)


@pytest.mark.parametrize(("limit", "expected"), [(2, [2, 4, 4, 4]), (-1, [2, 4, 6, 8])])
def test_sequences_trained_per_batch_past_the_cap_are_bounded_by_the_replay_limit(tokenizer, limit, expected):
    cfg = tiny_config(max_steps=2)
    cfg.adaptor.max_experts, cfg.adaptor.replay_limit = 1, limit
    editor = LEMoEEditor(tiny_model("llama"), tokenizer, cfg)
    for b in range(4):
        editor.edit([EditRequest(f"fact {b}{i} is", "xy") for i in range(2)])
    # every batch past the first reuses the one expert; with a limit the replayed edits do not grow with T
    assert [h["sequences"] for h in editor.history] == expected
    assert len(editor.expert_requests[0]) == 8  # every edit still belongs to the expert


@torch.no_grad()
def _post_target_kl(editor, base, suffix: list[int] | None = None) -> float:
    """KL(base || edited) of the next-token distributions right after the edit's target and after each
    token of ``suffix`` (plain forwards)."""
    enc = encode_pairs(editor.tokenizer, [EDIT[0].prompt], [EDIT[0].target], suffixes=[suffix or []])
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "output_hidden_states": True}
    now, before = (
        continuation_logits(m, m(**inputs).hidden_states[-1], enc["continuation_mask"]) for m in (editor.model, base)
    )
    return float(continuation_kl(before, now))


def test_continuation_mask_covers_the_last_answer_token_and_the_suffix(tokenizer):
    enc = encode_pairs(tokenizer, ["ab c", "ab"], ["xy", "x"], suffixes=[[], [5, 6]])
    for row, n_after in ((0, 0), (1, 2)):
        labelled = (enc["labels"][row] != -100).nonzero().flatten().tolist()
        expected = list(range(labelled[-1], labelled[-1] + n_after + 1))
        assert enc["continuation_mask"][row].nonzero().flatten().tolist() == expected
    end = int(enc["attention_mask"][1].sum())
    assert enc["input_ids"][1, end - 2 : end].tolist() == [5, 6]
    assert enc["labels"][1, end - 2 :].tolist() == [-100] * (enc["labels"].shape[1] - end + 2)


def test_continuations_are_the_models_greedy_tokens_cut_before_an_end_token(tokenizer):
    editor = LEMoEEditor(tiny_model("llama"), tokenizer, tiny_config())
    ids = encode_pairs(tokenizer, [EDIT[0].prompt], [EDIT[0].target])["input_ids"]
    greedy_ids = editor.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=4)
    assert editor.continuations(EDIT, 4) == [greedy_ids[0, ids.shape[1] :].tolist()]
    eos = editor.tokenizer.eos_token_id
    editor.tokenizer.eos_token_id = greedy_ids[0, ids.shape[1] + 2].item()
    try:
        assert editor.continuations(EDIT, 4) == [greedy_ids[0, ids.shape[1] : ids.shape[1] + 2].tolist()]
    finally:
        editor.tokenizer.eos_token_id = eos


def test_continuation_term_keeps_the_token_after_the_target_closer_to_the_unedited_model(tokenizer):
    kls = []
    for weight in (0.0, 1.0):
        model = tiny_model("llama")
        sets = build_eval_sets(model, tokenizer, EDIT, layer=1)
        cfg = tiny_config(max_steps=120, continuation_weight=weight)
        cfg.router.null_threshold = "none"  # the expert fires, so only training can keep the continuation
        editor = LEMoEEditor(model, tokenizer, cfg)
        editor.edit(EDIT)
        assert evaluate(editor, sets)["rel"] == 1.0  # the edit is learned either way
        kls.append(_post_target_kl(editor, tiny_model("llama")))
    assert kls[0] > 1e-3 and kls[1] < 0.01 * kls[0]  # measured once: 9.5e-3 without the term, 7.7e-6 with it


def test_longer_continuation_term_keeps_the_text_after_the_target(tokenizer):
    """continuation_tokens = 4 also holds the three greedy tokens the unedited model writes after the target."""
    base = tiny_model("llama")
    suffix = LEMoEEditor(tiny_model("llama"), tokenizer, tiny_config()).continuations(EDIT, 3)[0]
    kls = []
    for tokens in (1, 4):
        cfg = tiny_config(max_steps=120, continuation_weight=1.0, continuation_tokens=tokens)
        cfg.router.null_threshold = "none"
        model = tiny_model("llama")
        editor = LEMoEEditor(model, tokenizer, cfg)
        editor.edit(EDIT)
        assert evaluate(editor, build_eval_sets(model, tokenizer, EDIT, layer=1))["rel"] == 1.0
        kls.append(_post_target_kl(editor, base, suffix))
    assert kls[1] < 0.5 * kls[0]  # measured once: 1.0e-2 with the next token only, 9.3e-4 with four positions
