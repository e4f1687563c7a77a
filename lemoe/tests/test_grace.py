import torch
from conftest import plain_forward_is_unedited, tiny_config, tiny_model

from lemoe.baselines.grace import GRACECodebook, GRACEEditor, last_positions
from lemoe.data import EditRequest
from lemoe.metrics import build_eval_sets, evaluate
from lemoe.training import encode_pairs


class WordTokenizer:
    """One id per whitespace-separated word (ids given in order of first sight): one-token answers, as
    most counterfactual targets are for a BPE tokenizer. One replaced FFN output per edit cannot spell a
    multi-token answer through the single layer above it in a 2-layer random model."""

    pad_token_id, eos_token_id = 0, 1

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [self.vocab.setdefault(w, 3 + len(self.vocab)) for w in text.split()]}


def _editor(kind, tokenizer, eps=0.5):
    cfg = tiny_config()
    return GRACEEditor(tiny_model(kind), tokenizer, cfg.adaptor, cfg.train, lr=0.1, eps_init=eps)


def test_codebook_adds_expands_and_splits_by_distance_and_label():
    book = GRACECodebook(torch.nn.Identity(), 2)
    zero = torch.zeros(2)
    assert book.place(torch.tensor([0.0, 0.0]), zero, "a", eps_init=1.0) == 0
    assert book.place(torch.tensor([3.0, 0.0]), zero, "b", eps_init=1.0) == 1  # 3 > ε₀ + ε_init: new entry
    assert book.place(torch.tensor([0.0, 1.5]), zero, "a", eps_init=1.0) == 0  # same label, within reach: expand
    assert book.radii.tolist() == [1.5, 1.0]
    assert book.place(torch.tensor([3.0, 1.2]), zero, "c", eps_init=1.0) == 2  # other label: split
    assert torch.allclose(book.radii, torch.tensor([1.5, 0.6, 0.6]))
    queries = torch.tensor([[0.0, 1.4], [3.0, 0.5], [3.0, -0.7], [10.0, 10.0]])
    assert book.lookup(queries).tolist() == [0, 1, -1, -1]


def test_last_positions_for_right_and_left_padding():
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]])
    assert last_positions(mask).tolist() == [2, 3, 0]


def test_grace_edits_reliably_and_leaves_unrelated_prompts_bit_identical(kind):
    tokenizer = WordTokenizer()
    requests = [
        EditRequest("the sky is", "green", "the sky is", "dogs are", "nice"),
        EditRequest("water is", "dry", "water is", "cats are", "soft"),
    ]
    editor = _editor(kind, tokenizer, eps=0.1)
    sets = build_eval_sets(editor.model, tokenizer, requests, layer=1)
    editor.edit(requests[:1])
    first_value = editor.codebook.values[0].clone()
    editor.edit(requests[1:])
    assert len(editor.codebook) == 2
    assert torch.equal(editor.codebook.values[0], first_value)  # another label's entry does not move
    scores = evaluate(editor, sets)
    assert scores["rel"] == 1.0 and scores["loc"] == 1.0
    # the model on its own: a plain forward of an unrelated prompt equals the unedited model's
    assert plain_forward_is_unedited(editor, "dogs are")
    # and plain `generate` on the edit prompt answers with the target (decision kept over cached steps)
    prompt = torch.tensor([tokenizer("the sky is")["input_ids"]])
    target = encode_pairs(tokenizer, ["the sky is"], ["green"])["input_ids"][0, prompt.shape[1] :]
    out = editor.model.generate(
        input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=target.numel(), do_sample=False
    )
    assert torch.equal(out[0, prompt.shape[1] :], target)
