import pytest
import torch
from conftest import plain_forward_is_unedited, tiny_config, tiny_model

from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor
from lemoe.subjects import SubjectIndex, subject_token_variants
from lemoe.training import encode_pairs

BATCHES = [
    [EditRequest("the capital of Peru is", "xx", subject="Peru"), EditRequest("Oslo lies in", "yy", subject="Oslo")],
    [EditRequest("the river Nile flows into", "ab", subject="Nile")],
]


def _editor(tokenizer, pooling="prompt", null="none", kind="llama"):
    cfg = tiny_config(max_steps=60)
    cfg.router.pooling, cfg.router.null_threshold = pooling, null
    editor = LEMoEEditor(tiny_model(kind), tokenizer, cfg)
    for batch in BATCHES:
        editor.edit(batch)
    return editor


def test_variants_cover_leading_space_and_capital(tokenizer):
    variants = subject_token_variants(tokenizer, "the Nile")
    # 'the Nile', 'The Nile', 'the nile', 'THE NILE' ('The Nile' again as title case), with and without a space
    assert sorted(len(v) for v in variants) == [8, 8, 8, 8, 9, 9, 9, 9]
    for text in (" the Nile", "The Nile", " the nile", "THE NILE"):
        assert tokenizer(text)["input_ids"] in variants


def test_find_prefers_the_longest_then_the_earliest_match_inside_the_mask():
    index = SubjectIndex()
    index.add([[7, 8], [7, 8, 9], [5]])
    index.add([[7, 8]])  # already stored: not added twice
    assert len(index) == 3
    ids = torch.tensor([[5, 7, 8, 9, 5], [1, 7, 8, 2, 2], [1, 2, 3, 4, 6], [1, 2, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    span = index.find(ids, mask)
    assert span.int().tolist() == [
        [0, 1, 1, 1, 0],  # [7, 8, 9] beats the earlier [5]
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],  # no stored subject
        [0, 0, 1, 1, 0],  # the 9 is outside the mask (the target), so only [7, 8] is named
    ]


def test_subject_pooling_gives_the_same_value_to_every_wording_of_the_subject(tokenizer, kind):
    editor = _editor(tokenizer, pooling="subject", kind=kind)
    prompts = ["the capital of Peru is", "so Peru's capital city is called", "what is the capital of Pe-ru"]
    enc = encode_pairs(tokenizer, prompts, ["xx"] * 3)
    values, named = editor.pool(enc["input_ids"], enc["prompt_mask"])
    assert named.tolist() == [True, True, False]  # a hyphenated 'Pe-ru' is missed by the token match
    assert torch.allclose(values[0], values[1], rtol=0, atol=1e-7)  # the same tokens, summed in other rows
    peru = torch.tensor(tokenizer(" Peru", add_special_tokens=False)["input_ids"])
    expected = editor.model.get_input_embeddings()(peru).float().mean(0)
    assert torch.allclose(values[0], expected)
    # the unnamed prompt falls back to its whole prompt
    whole = editor.model.get_input_embeddings()(enc["input_ids"][2][enc["prompt_mask"][2].bool()]).float().mean(0)
    assert torch.allclose(values[2], whole)
    # prompt + target and prompt alone route alike, and every edit reaches its own expert
    requests = [r for batch in BATCHES for r in batch]
    with_target = encode_pairs(tokenizer, [r.prompt for r in requests], [r.target for r in requests])
    alone = encode_pairs(tokenizer, [r.prompt for r in requests], ["q"] * 3)
    routed = editor.routed_expert(with_target["input_ids"], with_target["prompt_mask"])
    assert routed.tolist() == editor.routed_expert(alone["input_ids"], alone["prompt_mask"]).tolist() == [0, 0, 1]


def test_subject_gate_fires_only_for_prompts_naming_an_edited_subject(tokenizer):
    editor = _editor(tokenizer, pooling="subject", null="subject")
    prompts = ["the capital of Peru is", "a paraphrase about the Nile:", "nothing edited here", "Lima is in"]
    prompts += ["what is the capital of peru", "THE CAPITAL OF PERU IS"]  # case-folded mentions are found
    enc = encode_pairs(tokenizer, prompts, ["x"] * 6)
    # Peru was edited in the first batch (expert 0), the Nile in the second (expert 1): a paraphrase
    # naming the Nile reaches the Nile's expert; prompts naming no edited subject reach none
    assert editor.routed_expert(enc["input_ids"], enc["prompt_mask"]).tolist()[:4] == [0, 1, -1, -1]
    assert (editor.routed_expert(enc["input_ids"], enc["prompt_mask"])[4:] >= 0).all()
    # an unrelated prompt sees the unedited model exactly, also through the model's own forward hook
    assert plain_forward_is_unedited(editor, "nothing edited here")


def test_subject_options_name_the_request_without_a_subject(tokenizer):
    cfg = tiny_config(max_steps=1)
    cfg.router.null_threshold = "subject"
    editor = LEMoEEditor(tiny_model("llama"), tokenizer, cfg)
    with pytest.raises(ValueError, match=r"request 1 of this batch \('b is'\) has none"):
        editor.edit([EditRequest("a is", "x", subject="a"), EditRequest("b is", "y")])
    cfg.router.pooling = "entity"
    with pytest.raises(ValueError, match=r"RouterConfig\.pooling must be one of \['prompt', 'subject'\], got 'entity'"):
        LEMoEEditor(tiny_model("llama"), tokenizer, cfg)


def test_save_load_keeps_the_subject_index(tokenizer, tmp_path):
    editor = _editor(tokenizer, pooling="subject", null="subject")
    enc = encode_pairs(tokenizer, ["so the Nile flows into", "nothing edited here"], ["ab", "x"])
    expected = editor.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"])
    editor.save_pretrained(tmp_path)
    restored = LEMoEEditor.from_pretrained(tiny_model("llama"), tmp_path, tokenizer)
    assert torch.equal(restored.adaptor.subjects.ids, editor.adaptor.subjects.ids)
    assert torch.equal(restored.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"]), expected)
