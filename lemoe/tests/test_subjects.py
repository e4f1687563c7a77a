import pytest
import torch
from conftest import plain_forward_is_unedited, tiny_config, tiny_model

from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor
from lemoe.subjects import SubjectIndex, folded, subject_key
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


def test_subject_keys_are_case_folded_letters_and_digits(tokenizer):
    assert subject_key(tokenizer, "the Nile") == subject_key(tokenizer, " THE  NILE ") == "the nile"
    assert folded("(Pe-ru APA-56)?") == ("pe ru apa 56", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])


def test_find_prefers_the_longest_then_the_earliest_mention_inside_the_mask(tokenizer):
    index = SubjectIndex()
    index.add(["ab", "abc", "z"])
    index.add(["ab", ""])  # already stored / empty: not added
    assert len(index) == 3
    rows = ["z ab c abc", "x ab yy", "xabc abx", "q abc"]
    enc = encode_pairs(tokenizer, rows, ["k"] * 4)
    mask = enc["prompt_mask"].clone()
    mask[3, 4:] = 0  # the last row's "c" and beyond are outside the mask (the target)
    span = index.find(enc["input_ids"], mask, tokenizer)
    named = ["".join(r[i] for i in range(len(r)) if span[n, i]) for n, r in enumerate(rows)]
    # "abc" (longest) beats the earlier "z"; inside words ("xabc", "abx") nothing is named
    assert named == ["abc", "ab", "", "ab"]  # the mask cuts the last row's "abc" to "ab" (+ the target)


def test_character_matching_finds_what_token_matching_missed():
    """With SmolLM2's byte-level BPE tokenizer: BPE-merged punctuation, a hyphen for a space, case and
    a leading space or none all name the subject; a subject inside a longer word does not."""
    from transformers import AutoTokenizer

    from shared_utils.models import EmbeddedModelMissing, resolve_model

    try:
        tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    except EmbeddedModelMissing as err:
        pytest.skip(str(err))
    index = SubjectIndex()
    index.add([subject_key(tok, s) for s in ("USS Leedstown (APA-56)", "Saint-Denis", "Peru", "Ur")])
    prompts = [
        "Which war did the USS Leedstown (APA-56)? serve in",  # ")?" is one BPE token
        "Where is Saint Denis",
        "PERU's capital is",
        "Peru",
        "Is your city in Perugia",  # neither 'Ur' in 'your' nor 'Peru' in 'Perugia'
    ]
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    input_ids = torch.tensor([i + [0] * (width - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    span = index.find(input_ids, mask, tok)
    named = [tok.decode([t for t, s in zip(row, keep) if s]).strip() for row, keep in zip(ids, span.tolist())]
    assert named[0] == "USS Leedstown (APA-56"  # found although ")?" is one token; the span ends at "56"
    assert named[1:] == ["Saint Denis", "PERU", "Peru", ""]


def test_subject_pooling_gives_the_same_value_to_every_wording_of_the_subject(tokenizer, kind):
    editor = _editor(tokenizer, pooling="subject", kind=kind)
    prompts = ["the capital of Peru is", "so in Peru the capital city is called", "what is the capital of Perugia"]
    enc = encode_pairs(tokenizer, prompts, ["xx"] * 3)
    values, named = editor.pool(enc["input_ids"], enc["prompt_mask"])
    assert named.tolist() == [True, True, False]  # 'Peru' inside 'Perugia' is no mention
    assert torch.allclose(values[0], values[1], rtol=0, atol=1e-7)  # the same tokens, summed in other rows
    peru = torch.tensor(tokenizer("Peru", add_special_tokens=False)["input_ids"])  # the mention's own tokens
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
    prompts = ["the capital of Peru is", "a paraphrase about the Nile ok", "nothing edited here", "Lima is in"]
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
    assert torch.equal(restored.adaptor.subjects.text, editor.adaptor.subjects.text)
    assert torch.equal(restored.logits(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"]), expected)
